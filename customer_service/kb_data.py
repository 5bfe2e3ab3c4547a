"""The demo's knowledge base for a fictional bank ("Larkspur Bank"), written for this project.

Each entry is `intent: (title, answer, phrasings)`; phrasings are `|`-separated user questions.
Answers with `{card_type}` or `{account_type}` are templates filled from the conversation.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd

SLOTS = {
    "card_type": ["debit", "credit", "prepaid", "business"],
    "account_type": ["checking", "savings", "joint", "student"],
}

KB: dict[str, tuple[str, str, str]] = {
    "freeze_card": (
        "Freeze a card",
        "You can freeze your {card_type} card at once in the app: Cards > {card_type} card > Freeze. Unfreeze it the same way.",
        "how do I freeze my card|can I temporarily block my card|I want to pause my card for a while|lock my card please|is there a way to put my card on hold|I misplaced my card, can I freeze it until I find it|how do I freeze my debit card",
    ),
    "report_stolen_card": (
        "Report a stolen card",
        "We are sorry. Your {card_type} card is now blocked for safety; call us any time on the number on our website and we will send a new one.",
        "my card was stolen|someone took my wallet with my card|I need to report a stolen card|thief has my credit card|my card got stolen yesterday|report theft of my card",
    ),
    "lost_card": (
        "Lost card",
        "Block the lost card in the app under Cards > Report lost. A replacement arrives in 5 to 7 working days.",
        "I lost my card|can't find my card anywhere|my card is lost what do I do|I think I dropped my card somewhere|report a lost card|I have lost my bank card",
    ),
    "replacement_card": (
        "Order a replacement card",
        "A replacement {card_type} card can be ordered in the app under Cards > Replace. It is free once a year.",
        "how do I order a replacement|I need a new card because mine is damaged|my card is broken, can I get another|replace my card|order a new card|the chip on my card stopped working, I need a new one",
    ),
    "card_delivery": (
        "Card delivery time",
        "New cards arrive within 5 to 7 working days. If yours has not arrived after 10 days, tell us and we will resend it.",
        "when will my card arrive|my new card hasn't come yet|how long does card delivery take|still waiting for my card in the post|card not delivered|where is my new card",
    ),
    "activate_card": (
        "Activate a card",
        "Activate your card by making a chip-and-PIN payment or cash withdrawal, or tap Activate in the app.",
        "how do I activate my new card|my card needs activating|activate card|the card I received is not working yet|what do I do to start using my new card|turn on my new card",
    ),
    "change_pin": (
        "Change your PIN",
        "You can change your PIN at any of our ATMs under PIN services, or view it in the app under Cards > Show PIN.",
        "how can I change my pin|I want a new pin number|reset my card pin|forgot my pin|where can I see my pin|update my PIN code",
    ),
    "card_declined": (
        "Card declined",
        "A payment can be declined for low balance, a frozen card, a spending limit, or a blocked merchant. Check Cards > Status in the app.",
        "why was my card declined|my payment got rejected at the shop|card not working at the store|transaction declined for no reason|my card keeps getting refused|why did my purchase fail",
    ),
    "contactless": (
        "Contactless payments",
        "Contactless works for payments up to 100 euros; above that you will be asked for your PIN.",
        "why doesn't contactless work|what is the contactless limit|tap to pay isn't working|contactless payment failed|how much can I pay contactless|my card won't tap",
    ),
    "card_limit": (
        "Card spending limit",
        "Your {card_type} card limit is shown under Cards > Limits, where you can also ask for a change.",
        "what's my card limit|how much can I spend on my card|raise my spending limit|increase my card limit|what's the maximum I can spend|change my daily card limit",
    ),
    "annual_fee": (
        "Annual card fee",
        "The {card_type} card annual fee is listed in our price list under Cards; the first year is always free.",
        "is there an annual fee on my card|how much does the card cost per year|yearly card fee|do I pay a fee for my card every year|card membership fee|what's the annual charge for the card",
    ),
    "virtual_card": (
        "Virtual cards",
        "Create a virtual card in the app under Cards > New virtual card. It works online right away.",
        "can I get a virtual card|how do I make a disposable card for online shopping|create a virtual card|I want a card number for online payments only|do you offer virtual cards|single use card for online",
    ),
    "apple_google_pay": (
        "Mobile wallets",
        "Add your card to Apple Pay or Google Pay from the app: Cards > Add to wallet.",
        "does my card work with apple pay|how do I add my card to google pay|set up mobile wallet|can I pay with my phone|add card to my phone wallet|phone payments setup",
    ),
    "open_account": (
        "Open an account",
        "You can open a {account_type} account in the app in about ten minutes; have your ID ready.",
        "how do I open an account|I want to open a new account|sign up for an account|become a customer|start a new bank account|open a second account",
    ),
    "close_account": (
        "Close an account",
        "To close your {account_type} account, empty it and choose Settings > Close account; we confirm by e-mail.",
        "how do I close my account|I want to shut down my account|cancel my bank account|terminate my account|delete my account|I'm leaving the bank, close everything",
    ),
    "account_balance": (
        "Check your balance",
        "Your {account_type} balance is on the home screen of the app and at any ATM.",
        "what's my balance|how much money do I have|check my account balance|show me my balance|how much is left in my account|current balance please",
    ),
    "statement": (
        "Account statements",
        "Download statements as PDF in the app under Accounts > Statements, for any month of the last 7 years.",
        "where can I get my bank statement|download statement|I need a statement for last month|monthly statement|print my account statement|statement for my mortgage application",
    ),
    "interest_rate": (
        "Interest rates",
        "The current interest rate of your {account_type} account is shown under Accounts > Details.",
        "what interest do you pay|what's the interest rate on savings|how much interest will I earn|current savings rate|do I get interest on my money|interest on my account",
    ),
    "overdraft": (
        "Overdraft",
        "You can request an arranged overdraft of up to 2,000 euros in the app under Accounts > Overdraft.",
        "can I get an overdraft|how does an overdraft work|I need to go below zero|apply for overdraft|increase my overdraft|what is my overdraft limit",
    ),
    "joint_account": (
        "Joint accounts",
        "A joint account can be opened by two adults; both must confirm in their own app.",
        "can I open a joint account|account with my partner|shared account with my wife|how do joint accounts work|add my husband to my account|open an account together",
    ),
    "student_account": (
        "Student accounts",
        "Students get a fee-free account with a 500 euro interest-free overdraft; upload proof of enrolment.",
        "do you have student accounts|I'm a student, is there a special account|student banking|account for university students|benefits for students|student account requirements",
    ),
    "transfer_money": (
        "Send money",
        "Send money in the app under Payments > New transfer; transfers within the country arrive the same day.",
        "how do I transfer money|send money to a friend|make a bank transfer|pay someone|move money to another account|how to send funds",
    ),
    "transfer_pending": (
        "Pending transfer",
        "Transfers can stay pending for up to one working day while checks run. You'll get a notification once it completes.",
        "my transfer is still pending|why hasn't my transfer gone through|transfer stuck|money hasn't arrived at the other account|payment in progress for too long|transfer not completed yet",
    ),
    "international_transfer": (
        "International transfers",
        "International transfers go through Payments > Abroad and take 1 to 3 working days; the fee is shown before you confirm.",
        "can I send money abroad|international transfer|wire money overseas|transfer to another country|how long does a foreign transfer take|send money to my family in another country",
    ),
    "transfer_fee": (
        "Transfer fees",
        "Domestic transfers are free. International ones cost 0.5 percent, minimum 2 euros.",
        "how much does a transfer cost|is there a fee for sending money|transfer charges|why was I charged for my transfer|fees for wire transfer|are transfers free",
    ),
    "cancel_transfer": (
        "Cancel a transfer",
        "A transfer can be cancelled until it leaves pending status: open it in Payments and tap Cancel.",
        "can I cancel a transfer|stop a payment I just made|undo my transfer|I sent money to the wrong person|reverse a payment|cancel pending transfer",
    ),
    "standing_order": (
        "Standing orders",
        "Set up a standing order under Payments > Scheduled; pick the amount, date and how often.",
        "how do I set up a standing order|recurring payment|pay my rent automatically every month|schedule a regular transfer|automatic monthly payment|create a repeating payment",
    ),
    "direct_debit": (
        "Direct debits",
        "Direct debits are listed under Payments > Direct debits, where you can also cancel one.",
        "how do I cancel a direct debit|see my direct debits|a company is taking money from my account every month|stop a direct debit|manage my debits|what direct debits do I have",
    ),
    "refund": (
        "Refunds",
        "Refunds from shops usually arrive within 5 working days. Ask the merchant first if it takes longer.",
        "where is my refund|the shop said they refunded me but I don't see it|how long do refunds take|refund not received|waiting for money back from a store|merchant refund missing",
    ),
    "dispute_charge": (
        "Dispute a charge",
        "If you don't recognise a payment, open it in the app and tap Dispute; we answer within 10 working days.",
        "I don't recognise a payment|there's a charge I didn't make|dispute a transaction|unknown payment on my statement|someone used my card without permission|strange transaction on my account",
    ),
    "double_charge": (
        "Charged twice",
        "A double charge is often a pending authorisation that disappears within 3 days. If both stay, dispute one.",
        "I was charged twice|double payment for the same thing|duplicate transaction|the shop took my money twice|charged two times|same purchase appears twice",
    ),
    "cash_withdrawal": (
        "Cash withdrawals",
        "Withdraw cash at any ATM; withdrawals are free up to 5 per month, then 1 euro each.",
        "where can I withdraw cash|is it free to take money out at ATMs|cash machine fees|how much does it cost to withdraw cash|atm withdrawal limit|get cash from an atm",
    ),
    "atm_swallowed_card": (
        "ATM kept my card",
        "If an ATM keeps your card, freeze it in the app and order a replacement; the ATM's bank destroys the card.",
        "the atm ate my card|cash machine kept my card|my card got stuck in the atm|atm swallowed my card|machine didn't give my card back|card retained by atm",
    ),
    "atm_wrong_amount": (
        "ATM gave the wrong amount",
        "If an ATM gave less cash than it charged, tell us in the app under Help > ATM issue with the time and place.",
        "the atm gave me less money|I didn't get my cash but was charged|cash machine error|atm didn't dispense the money|wrong amount from atm|withdrawal failed but money taken",
    ),
    "deposit_cash": (
        "Deposit cash",
        "Cash can be paid in at our partner post offices with your card; it shows in your account the next working day.",
        "how do I deposit cash|where can I put money into my account|pay in cash|deposit coins and notes|can I deposit cash at a branch|cash deposit options",
    ),
    "deposit_cheque": (
        "Deposit a cheque",
        "Photograph the cheque in the app under Payments > Deposit cheque; funds clear in 2 working days.",
        "how do I deposit a check|can I cash a cheque|pay in a cheque with my phone|mobile check deposit|deposit a check online|cheque clearing time",
    ),
    "exchange_rate": (
        "Exchange rates",
        "Card payments abroad use the network exchange rate with no markup on weekdays; weekends add 0.5 percent.",
        "what exchange rate do you use|is there a fee for paying in another currency|foreign currency charges|using my card abroad cost|currency conversion rate|exchange rate for card payments",
    ),
    "travel_notice": (
        "Travelling abroad",
        "There's no need to tell us before you travel; your card works worldwide. Keep the app's notifications on.",
        "do I need to tell you I'm travelling|using my card on holiday|will my card work abroad|going overseas next week|travel notification|card in another country",
    ),
    "loan_apply": (
        "Personal loans",
        "Apply for a personal loan of 1,000 to 25,000 euros in the app under Borrow; you get a decision in minutes.",
        "can I get a loan|apply for a personal loan|I need to borrow money|how do I request a loan|loan application|borrow 5000 euros",
    ),
    "loan_rate": (
        "Loan interest",
        "Personal loan rates start at 5.9 percent APR; your rate depends on amount, term and credit history.",
        "what's the interest rate on loans|how much does a loan cost|loan APR|interest on a personal loan|cheapest loan rate|what rate would I pay to borrow",
    ),
    "loan_repay_early": (
        "Repay a loan early",
        "You can repay a loan early at any time in the app under Borrow > Repay; there is no fee.",
        "can I pay off my loan early|early loan repayment|settle my loan|is there a penalty for paying back early|repay the rest of my loan|clear my loan balance",
    ),
    "mortgage": (
        "Mortgages",
        "We offer fixed-rate mortgages for 10 to 30 years. Book a call with an adviser under Borrow > Mortgage.",
        "do you offer mortgages|I want to buy a house|home loan|how do I apply for a mortgage|mortgage rates|talk to someone about a mortgage",
    ),
    "credit_score": (
        "Credit score",
        "Your credit score is free to view in the app under Insights > Credit score; checking it does not affect it.",
        "what is my credit score|can I check my credit rating|how to improve my credit score|see my credit report|does checking my score hurt it|credit score in app",
    ),
    "reset_password": (
        "Reset your password",
        "Reset your password from the login screen: tap Forgot password and follow the link we e-mail you.",
        "I forgot my password|reset my password|can't log in|locked out of my account|change my login password|password not working",
    ),
    "two_factor": (
        "Two-factor authentication",
        "Two-factor authentication is on by default; manage it under Settings > Security.",
        "how do I enable two factor|set up 2fa|security code not arriving|verification code by sms|change my authentication device|two step login",
    ),
    "update_address": (
        "Change your address",
        "Update your address under Settings > Personal details; we may ask for proof of address.",
        "I moved house|change my address|update my home address|new address|how to change my postal address|I have a new address",
    ),
    "update_phone": (
        "Change your phone number",
        "Change your phone number under Settings > Personal details; we'll confirm by SMS to the new number.",
        "change my phone number|I have a new mobile number|update my contact number|new phone number|how do I change my number|my number changed",
    ),
    "identity_verification": (
        "Identity verification",
        "To verify your identity, upload a photo ID and a selfie in the app; checks usually take under an hour.",
        "why do I need to verify my identity|verification is taking too long|upload my ID|identity check failed|how do I verify my account|verify who I am",
    ),
    "fraud_call": (
        "Suspicious calls and messages",
        "We never ask for your PIN or passwords. Hang up and report the call in the app under Help > Report fraud.",
        "someone called pretending to be the bank|I got a suspicious text|is this email from you|phishing message|a caller asked for my pin|scam call",
    ),
    "app_not_working": (
        "App problems",
        "If the app fails, update it, restart your phone, and check our status page. Your money is safe.",
        "the app is not working|app keeps crashing|can't open the app|app error|the app won't load|mobile app down",
    ),
    "opening_hours": (
        "Support hours",
        "Chat support is open 24/7; phone support runs 8:00 to 20:00 on weekdays.",
        "when are you open|what are your opening hours|is support available at weekends|what time can I call|customer service hours|are you open on sunday",
    ),
    "branch_location": (
        "Branches",
        "Larkspur Bank is app-only and has no branches; our partner post offices handle cash.",
        "where is the nearest branch|do you have branches|can I visit you in person|branch near me|bank office address|where are your offices",
    ),
    "fees_overview": (
        "Account fees",
        "The {account_type} account has no monthly fee; see the full price list in Settings > Legal > Fees.",
        "what fees do you charge|is there a monthly fee|how much does the account cost|account charges|price list|hidden fees",
    ),
    "savings_goal": (
        "Savings goals",
        "Create a savings goal under Accounts > Goals and set an automatic monthly amount.",
        "how can I save for something|set a savings goal|put money aside automatically|saving for a holiday|round up my purchases into savings|create a savings pot",
    ),
    "salary_deposit": (
        "Getting paid",
        "Give your employer your account number and IBAN from Accounts > Details; salaries arrive on the day they are sent.",
        "when will my salary arrive|how do I get my wages paid in|salary not received|what details do I give my employer|paycheck deposit|where is my pay",
    ),
}

OUT_OF_SCOPE = (
    "what's the weather like tomorrow|recommend a good pizza place near me|who won the football match last night|"
    "how do I bake sourdough bread|tell me a joke about cats|what is the capital of australia|"
    "can you book me a flight to rome|how tall is mount everest|translate hello into japanese|"
    "what time does the cinema open|play some relaxing music|how many calories are in a banana|"
    "what's a good name for my dog|how do I fix a leaking tap|who wrote pride and prejudice|"
    "set an alarm for seven am|what's the best smartphone this year|how do I grow tomatoes|"
    "is it going to snow this weekend|suggest a movie for tonight|how far is the moon|"
    "what's the score of the tennis game|write me a poem about the sea|how do I change a car tyre|"
    "how long should I boil an egg|where can I buy cheap shoes|what's the meaning of life|"
    "teach me to play chess|what should I cook for dinner|how do I learn to swim"
).split("|")

# Generated out-of-scope questions, by family. Whole families go to validation or to test (see
# `out_of_scope_rows`), so the handoff threshold is judged on kinds of off-topic question it was
# not chosen on. "near_finance" and "other_devices" sit close to the bank's topics on purpose.
_CITIES = ["Paris", "Lisbon", "Berlin", "Tokyo", "New York", "Madrid", "Oslo", "Rome"]
OUT_OF_SCOPE_FAMILIES: dict[str, list[str]] = {
    "weather": [
        f"{q} {c}"
        for q in ("what's the weather in", "will it rain tomorrow in", "how hot is it in")
        for c in _CITIES[:6]
    ]
    + ["do I need an umbrella today", "what's the forecast for the weekend", "is it windy outside"],
    "cooking": [
        f"{q} {d}"
        for q in ("how do I make", "give me a recipe for", "how long do I bake")
        for d in ("lasagne", "pancakes", "banana bread", "a chocolate cake", "risotto", "curry")
    ]
    + ["what can I cook with chickpeas", "is it safe to eat raw cookie dough"],
    "travel_booking": [
        f"{q} {c}"
        for q in ("book me a train to", "find me a cheap hotel in", "what should I visit in")
        for c in _CITIES[2:]
    ]
    + ["how long is the flight to sydney", "do I need a visa for canada"],
    "entertainment": [
        f"recommend a good {g} {m}"
        for g in ("comedy", "horror", "science fiction", "romantic")
        for m in ("film", "book", "series")
    ]
    + [
        "what's on tv tonight",
        "play my workout playlist",
        "who sings bohemian rhapsody",
        "when does the new superhero movie come out",
        "what video game should I play next",
    ],
    "sport": [
        f"who won the {e} last night" for e in ("football match", "basketball game", "boxing fight")
    ]
    + [
        f"when does the {e} start"
        for e in ("world cup", "tour de france", "olympics", "new season")
    ]
    + [
        "how many players are on a rugby team",
        "what's the offside rule",
        "who is the best tennis player ever",
        "how do I get tickets for the match on saturday",
        "what time is the race on sunday",
    ],
    "trivia": [
        f"what is the capital of {c}" for c in ("canada", "peru", "kenya", "norway", "vietnam")
    ]
    + [
        "how tall is the eiffel tower",
        "who painted the mona lisa",
        "how far away is mars",
        "when did the second world war end",
        "how many bones are in the human body",
        "what's the longest river in the world",
        "who invented the telephone",
        "why is the sky blue",
        "how many languages are spoken in india",
        "what is the speed of light",
    ],
    "home_diy": [
        f"how do I {t}"
        for t in (
            "unblock a sink",
            "paint a ceiling",
            "hang a heavy mirror",
            "fix a squeaky door",
            "get rid of mould in the bathroom",
            "bleed a radiator",
            "lay laminate flooring",
            "replace a light switch",
            "clean my oven",
            "remove a wine stain from the carpet",
            "assemble a wardrobe",
            "stop my windows from steaming up",
        )
    ],
    "health": [
        f"how many calories are in {f}"
        for f in ("an apple", "a pint of beer", "a croissant", "rice")
    ]
    + [
        "what exercises help with back pain",
        "how much water should I drink a day",
        "is coffee bad for me",
        "how do I sleep better",
        "what are the symptoms of flu",
        "how do I start running",
        "is it normal to have a headache every day",
        "how many steps should I walk",
    ],
    "other_devices": [
        f"how do I reset my {d}" for d in ("router", "smart tv", "printer", "laptop", "headphones")
    ]
    + [f"my {d} won't turn on" for d in ("phone", "dishwasher", "games console", "tablet")]
    + [
        "how do I connect my printer to wifi",
        "why is my internet so slow",
        "update the software on my tv",
        "my laptop battery drains fast",
        "how do I back up my photos",
    ],
    "assistant": [
        "set an alarm for six thirty",
        "remind me to call my mum at five",
        "turn off the living room lights",
        "send a text to my brother",
        "add milk to my shopping list",
        "start a ten minute timer",
        "what's on my calendar tomorrow",
        "call a taxi to the station",
        "order a pizza for tonight",
        "read me the news",
        "translate thank you into german",
        "what time is it in tokyo",
    ],
    "chit_chat": [
        "how are you today",
        "what's your favourite colour",
        "do you like music",
        "tell me a fun fact",
        "what's the meaning of life",
        "are you smarter than me",
        "do you dream",
        "tell me a story",
        "what did you have for breakfast",
        "can we be friends",
        "what's your star sign",
        "sing me a song",
        "what do you do for fun",
    ],
    "near_finance": [f"should I buy shares in {c}" for c in ("apple", "tesla", "a car maker")]
    + [
        "what will the stock market do next year",
        "how do I fill in my tax return",
        "what's the inflation rate this year",
        "is gold a good investment",
        "how do index funds work",
        "can you give me investment advice",
        "how do I claim child benefit from the government",
        "what's a good pension age to retire",
        "how much should I spend on a wedding",
        "how do I read a company balance sheet",
        "what's a good first car to buy",
    ],
}


DIALOGUES = [
    [
        ("user", "hi, my card was stolen this morning"),
        ("agent", "report_stolen_card:credit"),
        ("user", "ok and how do I order a replacement?"),
        ("agent", "replacement_card:credit"),
    ],
    [
        ("user", "I sent money to the wrong account by mistake"),
        ("agent", "cancel_transfer"),
        ("user", "and how long is it pending usually"),
        ("agent", "transfer_pending"),
    ],
    [
        ("user", "hello, I moved to a new flat last week"),
        ("agent", "update_address"),
        ("user", "do I also need to change my number?"),
        ("agent", "update_phone"),
    ],
    [
        ("user", "the cash machine kept my card, my number is 4111 1111 1111 1111"),
        ("agent", "atm_swallowed_card"),
    ],
    [
        ("user", "I can't log in anymore, please email me at jo.doe@example.com"),
        ("agent", "reset_password"),
    ],
]


def out_of_scope_rows() -> pd.DataFrame:
    """All out-of-scope questions with a fixed split (columns `question, split`).

    The hand-written questions alternate between validation and test; generated families go
    whole to one side, alternating in the order above.
    """
    rows = [{"question": q, "split": ("val", "test")[i % 2]} for i, q in enumerate(OUT_OF_SCOPE)]
    for f, questions in enumerate(OUT_OF_SCOPE_FAMILIES.values()):
        rows += [{"question": q, "split": ("val", "test")[f % 2]} for q in questions]
    return pd.DataFrame(rows).drop_duplicates("question", ignore_index=True)


def fill(template: str, slots: dict[str, str]) -> str:
    """Fills `{slot}` placeholders that have a value, leaving the others in place."""
    for key, value in slots.items():
        template = template.replace("{" + key + "}", value)
    return template


def write_demo_data(folder: Path, seed: int = 0) -> Path:
    """Writes kb.csv, pairs.csv, dialogues.jsonl, out_of_scope.csv and slots.json; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "answer_id": f"A{i + 1:03d}",
            "intent": intent,
            "title": title,
            "answer": answer,
            "tags": intent.split("_")[0],
        }
        for i, (intent, (title, answer, _)) in enumerate(KB.items())
    ]
    pd.DataFrame(rows).to_csv(folder / "kb.csv", index=False)
    pairs = [
        {"question": q, "intent": intent}
        for intent, (_, _, phr) in KB.items()
        for q in phr.split("|")
    ]
    pd.DataFrame(pairs).to_csv(folder / "pairs.csv", index=False)
    out_of_scope_rows().to_csv(folder / "out_of_scope.csv", index=False)
    (folder / "slots.json").write_text(json.dumps(SLOTS, indent=2), encoding="utf-8")
    _write_dialogues(folder / "dialogues.jsonl", random.Random(seed))
    return folder


def _write_dialogues(path: Path, rng: random.Random) -> None:
    lines = []
    for n, dialogue in enumerate(DIALOGUES):
        for turn, (role, text) in enumerate(dialogue):
            if role == "agent":
                intent, _, slot = text.partition(":")
                text = fill(
                    KB[intent][1],
                    {
                        "card_type": slot or rng.choice(SLOTS["card_type"]),
                        "account_type": rng.choice(SLOTS["account_type"]),
                    },
                )
            lines.append(
                json.dumps(
                    {
                        "session_id": f"d{n}",
                        "turn": turn,
                        "role": role,
                        "text": text,
                        "ts": f"2026-01-0{1 + n % 9}T10:0{turn}:00Z",
                    }
                )
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
