from __future__ import annotations

from customer_service.session import (
    InMemorySessionStore,
    Session,
    extract_slots,
    fill_template,
    is_follow_up,
)

SLOTS = {"card_type": ["debit", "credit"], "account_type": ["savings"]}


def test_sessions_expire_after_their_ttl_and_renew_on_put():
    now = [0.0]
    store = InMemorySessionStore(ttl_s=10, clock=lambda: now[0])
    store.put(Session("a", slots={"card_type": "debit"}))
    now[0] = 9.0
    assert store.get("a").slots == {"card_type": "debit"}
    store.put(store.get("a"))  # renewed until 19
    now[0] = 18.0
    assert store.get("a") is not None
    now[0] = 19.5
    assert store.get("a") is None and store.get("unknown") is None


def test_store_keeps_at_most_max_sessions_dropping_the_least_recent():
    store = InMemorySessionStore(max_sessions=2)
    for name in ("a", "b", "c"):
        store.put(Session(name))
    assert store.get("a") is None and store.get("b") and store.get("c") and len(store) == 2


def test_get_returns_a_copy_so_unsaved_changes_do_not_leak():
    store = InMemorySessionStore()
    store.put(Session("a"))
    copy = store.get("a")
    copy.slots["card_type"] = "credit"
    assert store.get("a").slots == {}


def test_session_round_trips_through_a_dict():
    session = Session("x", slots={"card_type": "credit"}, last_answer_id="A1")
    session.add_turn("user", "hi")
    assert Session.from_dict(session.to_dict()) == session


def test_extract_slots_matches_whole_words_first_mention_wins():
    assert extract_slots("My Credit card and my debit card", SLOTS) == {"card_type": "credit"}
    assert extract_slots("creditworthy savings", SLOTS) == {"account_type": "savings"}
    assert extract_slots("nothing here", SLOTS) == {}


def test_fill_template_reports_missing_slots():
    text, missing = fill_template("Freeze your {card_type} card in {app}.", {"card_type": "debit"})
    assert text == "Freeze your debit card in ." and missing == ["app"]
    assert fill_template("No slots.", {}) == ("No slots.", [])


def test_a_short_message_is_a_follow_up_only_when_it_refers_to_the_previous_topic():
    card = ["card_type"]  # the previous answer's template slots (freeze card)
    assert is_follow_up("and for my credit card?", SLOTS, card)
    assert is_follow_up("what about my debit card", SLOTS, card)
    assert is_follow_up("credit one", SLOTS, card)
    assert is_follow_up("and how long does it take?", SLOTS, [])  # a pronoun points back
    assert is_follow_up("is that free?", SLOTS, [])
    # Short is not enough: no slot of the previous answer, no pronoun.
    for text in ("hello", "ok thanks", "agent please", "what about savings?", "yes"):
        assert not is_follow_up(text, SLOTS, []), text
    assert not is_follow_up("what about savings?", SLOTS, card)  # another slot's value
    assert is_follow_up("what about savings?", SLOTS, ["account_type"])
    assert not is_follow_up("how do I order a new credit card for my son", SLOTS, card)
    assert is_follow_up("and for my credit card, the one I use abroad every summer", SLOTS, card)


def test_forget_topic_keeps_turns_and_slots():
    session = Session("t", slots={"card_type": "debit"}, last_answer_id="A1", last_query="q")
    session.add_turn("user", "hi")
    session.pending_slots, session.last_slots = ["card_type"], ["card_type"]
    session.forget_topic()
    assert session.last_answer_id is None and session.last_query is None
    assert session.pending_slots == [] and session.last_slots == []
    assert session.slots == {"card_type": "debit"} and len(session.turns) == 1


def test_session_locks_exclude_per_session_only_and_forget_idle_sessions():
    import asyncio
    import threading
    import time

    from customer_service.session import SessionLocks

    locks, inside, overlaps = SessionLocks(), {"a": 0, "b": 0}, []

    def work(session_id):
        with locks.hold(session_id):
            inside[session_id] += 1
            overlaps.append(dict(inside))
            time.sleep(0.01)
            inside[session_id] -= 1

    threads = [threading.Thread(target=work, args=(s,)) for s in "aaabbb"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(o["a"] for o in overlaps) == 1 and max(o["b"] for o in overlaps) == 1
    assert any(o["a"] and o["b"] for o in overlaps)  # two sessions do not wait for each other
    assert len(locks) == 0

    order = []

    async def message(i):
        async with locks.hold_async("a"):
            order.append(("start", i))
            await asyncio.sleep(0.005)
            order.append(("end", i))

    async def main():
        await asyncio.gather(*(message(i) for i in range(4)))

    asyncio.run(main())
    assert order == [(e, i) for i in range(4) for e in ("start", "end")]  # in turn, in order
    assert len(locks) == 0
