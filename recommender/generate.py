"""A generated shop: items with written descriptions in several categories, and simulated users.

Every user has hidden tastes (a main and a second sub-topic); they view, click, like, share and
buy mostly within those tastes, with a popularity skew. Everything here is written in code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# category -> sub-topic -> (title nouns, description phrases, tags)
TOPICS: dict[str, dict[str, tuple[list[str], list[str], str]]] = {
    "kitchen": {
        "pasta": (
            [
                "Pasta Maker",
                "Ravioli Cutter",
                "Semolina Flour Kit",
                "Gnocchi Board",
                "Pasta Drying Rack",
            ],
            [
                "Roll fresh tagliatelle at home.",
                "Made for Italian pasta nights.",
                "Turns semolina dough into silky noodles.",
                "Perfect for hand-made ravioli and lasagne sheets.",
            ],
            "pasta|italian|dough",
        ),
        "baking": (
            ["Sourdough Starter Jar", "Proofing Basket", "Bread Lame", "Loaf Tin", "Dough Scraper"],
            [
                "For crusty sourdough loaves and bakery bread.",
                "Helps your dough rise evenly overnight.",
                "Score and bake artisan bread like a baker.",
                "A home baker's tool for yeast and rye breads.",
            ],
            "bread|baking|sourdough",
        ),
        "grilling": (
            ["Charcoal Grill", "Smoker Box", "Meat Thermometer", "Grill Tongs", "BBQ Rub Set"],
            [
                "Slow-smoked brisket and ribs over charcoal.",
                "Barbecue season essential for the backyard.",
                "Sear steaks over high heat on the grill.",
                "Wood chips and smoke for pitmaster flavour.",
            ],
            "bbq|grill|smoke",
        ),
    },
    "outdoors": {
        "hiking": (
            ["Trail Boots", "Trekking Poles", "Day Pack", "Trail Map Set", "Hydration Bladder"],
            [
                "Built for long mountain trails and rocky summits.",
                "Keeps you steady on steep alpine paths.",
                "Lightweight gear for day hikes in the hills.",
                "Tested on ridge walks and forest trails.",
            ],
            "hiking|trail|mountain",
        ),
        "camping": (
            ["Two-Person Tent", "Sleeping Bag", "Camp Stove", "Lantern", "Folding Camp Chair"],
            [
                "Sleep under the stars at the campsite.",
                "Warm nights in the tent, even below freezing.",
                "Cook dinner over a campfire or stove.",
                "Pitches in minutes for weekend camping trips.",
            ],
            "camping|tent|campfire",
        ),
        "paddling": (
            ["Touring Kayak", "Paddle", "Dry Bag", "Life Vest", "Spray Skirt"],
            [
                "Glide across lakes and calm rivers.",
                "Waterproof protection for kayak and canoe trips.",
                "Stable on open water and coastal paddles.",
                "For paddlers exploring rivers and sea caves.",
            ],
            "kayak|water|paddle",
        ),
    },
    "electronics": {
        "phones": (
            ["Smartphone", "Phone Case", "Wireless Charger", "Screen Protector", "Phone Gimbal"],
            [
                "Fast mobile performance and a sharp camera.",
                "Charges your phone without cables.",
                "Protects your smartphone screen from drops.",
                "Shoot steady mobile video for social media.",
            ],
            "phone|mobile|android",
        ),
        "gaming": (
            [
                "Gaming Mouse",
                "Mechanical Keyboard",
                "Gaming Headset",
                "Graphics Card",
                "Game Controller",
            ],
            [
                "Low latency for competitive PC gaming.",
                "RGB lighting and fast switches for gamers.",
                "Hear every footstep in online multiplayer games.",
                "High frame rates for the latest video games.",
            ],
            "gaming|pc|esports",
        ),
        "smarthome": (
            ["Smart Bulb", "Smart Speaker", "Video Doorbell", "Smart Thermostat", "Smart Plug"],
            [
                "Control your home lights with your voice.",
                "Automate heating and save energy at home.",
                "See who is at the door from your phone.",
                "Connects to your home assistant and routines.",
            ],
            "smart home|automation|voice",
        ),
    },
    "books": {
        "mystery": (
            [
                "Detective Novel",
                "Crime Thriller",
                "Murder Mystery",
                "Noir Paperback",
                "Whodunit Box Set",
            ],
            [
                "A detective hunts a killer through foggy streets.",
                "Twists, clues and a murder to solve.",
                "A gripping crime thriller you cannot put down.",
                "The inspector follows the suspects' alibis.",
            ],
            "mystery|crime|detective",
        ),
        "scifi": (
            [
                "Space Opera",
                "Cyberpunk Novel",
                "Alien Contact Saga",
                "Time Travel Story",
                "Starship Trilogy",
            ],
            [
                "Starships, distant galaxies and alien empires.",
                "Robots and AI in a neon future city.",
                "First contact with an alien civilisation.",
                "A science fiction epic across space and time.",
            ],
            "science fiction|space|future",
        ),
        "history": (
            [
                "Roman Empire History",
                "World War Chronicle",
                "Medieval Kingdoms",
                "Ancient Egypt Atlas",
                "Biography of a Queen",
            ],
            [
                "The rise and fall of ancient empires.",
                "Battles, kings and the people who made history.",
                "A historian's account of medieval Europe.",
                "Archaeology and the pharaohs of the Nile.",
            ],
            "history|ancient|biography",
        ),
    },
    "fitness": {
        "yoga": (
            ["Yoga Mat", "Yoga Blocks", "Meditation Cushion", "Stretching Strap", "Yoga Wheel"],
            [
                "For calm yoga flows and deep stretching.",
                "Improve balance and flexibility on the mat.",
                "Mindful breathing and meditation practice.",
                "Supports poses in vinyasa and hatha classes.",
            ],
            "yoga|stretch|mindfulness",
        ),
        "running": (
            [
                "Running Shoes",
                "GPS Running Watch",
                "Running Belt",
                "Reflective Vest",
                "Compression Socks",
            ],
            [
                "Cushioned for marathon training and long runs.",
                "Track your pace and distance on every run.",
                "Light and breathable for race day.",
                "Made for road running and park jogs.",
            ],
            "running|marathon|cardio",
        ),
        "strength": (
            [
                "Adjustable Dumbbells",
                "Kettlebell",
                "Weight Bench",
                "Resistance Bands",
                "Pull-up Bar",
            ],
            [
                "Build muscle with heavy lifting at home.",
                "Strength training for squats, presses and rows.",
                "A home gym staple for weight training.",
                "Progressive overload for powerlifters.",
            ],
            "strength|weights|gym",
        ),
    },
}
BRANDS = [
    "Nordic",
    "Summit",
    "Urban",
    "Classic",
    "Nova",
    "Prime",
    "Wild",
    "Zen",
    "Apex",
    "Cosy",
    "Bright",
    "Pro",
]
EVENT_LADDER = (("click", 0.55), ("like", 0.25), ("share", 0.08), ("purchase", 0.2))


def subtopics() -> list[tuple[str, str]]:
    """(category, sub-topic) pairs in a fixed order."""
    return [(cat, sub) for cat, subs in TOPICS.items() for sub in subs]


def make_item(category: str, sub: str, rng: np.random.Generator, item_id: str) -> dict[str, str]:
    """One item of a sub-topic: a brand-style title and a two-sentence description."""
    nouns, phrases, tags = TOPICS[category][sub]
    two = rng.choice(len(phrases), size=2, replace=False)
    return {
        "item_id": item_id,
        "title": f"{rng.choice(BRANDS)} {rng.choice(nouns)}",
        "description": f"{phrases[two[0]]} {phrases[two[1]]}",
        "tags": tags,
        "category": category,
        "subtopic": sub,
    }


def generate_catalogue(per_subtopic: int = 15, seed: int = 0) -> pd.DataFrame:
    """Items for every sub-topic, created over the 120 days before 2026-06-01."""
    rng = np.random.default_rng(seed)
    pairs = [pair for pair in subtopics() for _ in range(per_subtopic)]
    rows, titles = [], set()
    for k, (cat, sub) in enumerate(pairs):
        item = make_item(cat, sub, rng, f"i{k:04d}")
        while item["title"] in titles:  # brand x noun repeats: number later editions
            item["title"] += " II" if not item["title"].endswith(" II") else "I"
        titles.add(item["title"])
        rows.append(item)
    df = pd.DataFrame(rows)
    start = pd.Timestamp("2026-02-01", tz="UTC")
    df["created_at"] = [start + pd.Timedelta(days=float(d)) for d in rng.uniform(0, 60, len(df))]
    return df


def simulate_users(
    items: pd.DataFrame, n_users: int = 300, seed: int = 0, min_len: int = 6, max_len: int = 16
) -> pd.DataFrame:
    """Interactions of users with hidden tastes: 70% main sub-topic, 20% second, 10% anything."""
    rng = np.random.default_rng(seed + 1)
    subs = [s for _, s in subtopics()]
    by_sub = {s: np.flatnonzero(items["subtopic"].to_numpy() == s) for s in subs}
    appeal = rng.pareto(1.5, len(items)) + 1.0  # a few items are much more popular
    start = pd.Timestamp("2026-04-01", tz="UTC")
    rows = []
    for u in range(n_users):
        main, second = rng.choice(len(subs), size=2, replace=False)
        t = start + pd.Timedelta(hours=float(rng.uniform(0, 24 * 30)))
        seen: set[int] = set()
        for _ in range(int(rng.integers(min_len, max_len + 1))):
            draw = rng.random()
            pool = (
                by_sub[subs[main]]
                if draw < 0.7
                else by_sub[subs[second]]
                if draw < 0.9
                else np.arange(len(items))
            )
            pool = np.asarray([i for i in pool if i not in seen])
            if not len(pool):
                continue
            item = int(rng.choice(pool, p=appeal[pool] / appeal[pool].sum()))
            seen.add(item)
            t += pd.Timedelta(hours=float(rng.exponential(20)))
            rows.extend(_events(f"u{u:04d}", items["item_id"].iloc[item], t, rng))
    df = pd.DataFrame(rows)
    df["event_id"] = [f"e{k:06d}" for k in range(len(df))]
    return df


def _events(user: str, item: str, t: pd.Timestamp, rng: np.random.Generator) -> list[dict]:
    out = [{"user_id": user, "item_id": item, "event": "view", "ts": t.isoformat()}]
    for event, p in EVENT_LADDER:
        if rng.random() < p:
            t = t + pd.Timedelta(minutes=float(rng.uniform(1, 30)))
            out.append({"user_id": user, "item_id": item, "event": event, "ts": t.isoformat()})
    return out


def write_dataset(folder: Path, n_users: int = 300, per_subtopic: int = 15, seed: int = 0) -> Path:
    """Writes `items.csv` and `interactions.csv` to `folder` and returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    items = generate_catalogue(per_subtopic, seed)
    events = simulate_users(items, n_users, seed)
    items.drop(columns=["subtopic"]).assign(
        created_at=items["created_at"].map(lambda t: t.isoformat())
    ).to_csv(folder / "items.csv", index=False)
    events.to_csv(folder / "interactions.csv", index=False)
    return folder
