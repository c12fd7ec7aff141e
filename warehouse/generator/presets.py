"""Scale presets of the synthetic fashion logs, from the seconds-long `tiny` to the paper's Table 1 sizes.

The four paper presets reproduce the user, item and interaction counts of Table 1 of arXiv 2410.11327
("Statistics of the datasets"), one category each; interactions there are searches, clicks and purchases,
here searches + clicks + add-to-carts + purchases (impressions are not counted). `tiny` and `demo` mix all
four categories and give users more purchases, so that a next-purchase model has train, valid and test
targets for most users.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from warehouse.generator.vocabulary import CATEGORIES, SUBCATEGORIES


@dataclass(frozen=True)
class GeneratorPreset:
    """How large the synthetic logs are and the few knobs that shape them.

    The behaviour itself (click model, comparison, calendar effects) lives in `behaviour.BehaviourParams`;
    a preset only says how much of it to generate.
    """

    name: str
    n_users: int  # exact number of users; every user buys at least once
    n_items: int  # exact number of rows in items.parquet (the catalog, sold at some time in the period)
    # Target number of search + click + add_to_cart + purchase events: purchase sessions come first, sessions
    # without purchase fill up to it (generate warns when the purchases alone overshoot it by > 5%).
    n_interactions: int
    categories: tuple[str, ...] = CATEGORIES
    # Restrict the catalog to these subcategories (None = every subcategory of `categories`): small catalogs
    # spread over 50 subcategories would leave a handful of products per search.
    subcategories: tuple[str, ...] | None = None
    # 18 months, so that every season and holiday recurs at least once and test targets fall in a season
    # that the training history has already seen (design choice; the paper's window is not published).
    start: date = date(2023, 1, 1)
    end: date = date(2024, 6, 30)
    # Mean purchases per user (>= 1). Paper presets: 1.7, which with the ~6 searches, comparison clicks and
    # carts of each purchase leaves room for some browsing within Table 1's ~12 interactions per user;
    # tiny 4 and demo 3, so that most users have train, valid and test targets.
    mean_purchases_per_user: float = 1.7
    # Share of purchases that start from a recommendation feed instead of a search (search_id null);
    # design choice, the paper only says sequences mix searches, clicks and purchases.
    direct_purchase_share: float = 0.15
    # Organic results per search page, drawn uniformly in this range (Amazon shows ~16-24 per page).
    organic_results: tuple[int, int] = (10, 20)
    # Share of catalog families that are holiday editions (Christmas sweaters, Halloween costumes, ...).
    holiday_family_share: float = 0.1
    # Cap on colors x sizes per family (None = no cap). Small catalogs need more, smaller families so that a
    # search still finds a page of distinct products; sizes are cut before colors.
    max_variants_per_family: int | None = None
    # Share of purchase missions preceded by a research session (search + clicks) days before.
    research_share: float = 0.35
    # Share of extra faulty rows (client retries, unknown event types, delisted items, searches without a
    # query) that the warehouse must quarantine; real click logs carry a fraction of a percent of them.
    noise_share: float = 0.002

    def with_(self, **changes) -> GeneratorPreset:
        """A copy with some fields changed, e.g. ``PRESETS['tiny'].with_(n_users=50)``."""
        return replace(self, **changes)

    def subcategory_names(self) -> tuple[str, ...]:
        if self.subcategories is not None:
            return self.subcategories
        return tuple(s.name for s in SUBCATEGORIES if s.category in self.categories)

    def validate(self) -> None:
        """Raise ValueError naming the field when the preset cannot be generated."""
        problems = []
        if self.n_users < 1:
            problems.append(f"n_users={self.n_users} must be >= 1")
        if self.n_items < 20:
            problems.append(f"n_items={self.n_items} must be >= 20")
        if self.mean_purchases_per_user < 1:
            problems.append(f"mean_purchases_per_user={self.mean_purchases_per_user} must be >= 1")
        if self.n_interactions < self.n_users * 3:
            problems.append(
                f"n_interactions={self.n_interactions} is below 3 per user (a search, a click "
                "and a purchase); raise it or lower n_users"
            )
        if not 0 <= self.noise_share < 0.5:
            problems.append(f"noise_share={self.noise_share} must be in [0, 0.5)")
        if (self.end - self.start).days < 60:
            problems.append(f"start..end ({self.start}..{self.end}) must span at least 60 days")
        for c in self.categories:
            if c not in CATEGORIES:
                problems.append(f"unknown category {c!r}; expected some of {CATEGORIES}")
        known = {s.name: s.category for s in SUBCATEGORIES}
        for s in self.subcategories or ():
            if s not in known:
                problems.append(f"unknown subcategory {s!r}")
            elif known[s] not in self.categories:
                problems.append(f"subcategory {s!r} is in {known[s]!r}, which is not in categories")
        lo, hi = self.organic_results
        if not 1 <= lo <= hi <= 30:
            problems.append(f"organic_results={self.organic_results} must satisfy 1 <= lo <= hi <= 30")
        if problems:
            raise ValueError(f"preset {self.name!r}: " + "; ".join(problems))


# fmt: off
# tiny/demo keep a few subcategories per category so that each search still has a page of products.
_TINY_SUBCATEGORIES = (
    "Suitcases", "Backpacks", "Tote Bags",
    "Sneakers", "Sandals", "Boots",
    "Necklaces", "Earrings", "Beanies",
    "Dresses", "Sweaters", "Swimwear", "T-Shirts",
)
_DEMO_SUBCATEGORIES = _TINY_SUBCATEGORIES + (
    "Handbags", "Duffel Bags", "Beach Bags",
    "Heels", "Slippers", "Snow Boots", "Flip Flops",
    "Sunglasses", "Watches", "Wallets", "Scarves",
    "Tank Tops", "Blouses", "Jeans", "Hoodies", "Coats", "Costumes", "Pajamas",
)
# fmt: on

PRESETS: dict[str, GeneratorPreset] = {
    # Tests: a few seconds, all four categories, ~4 purchases per user so every split has targets.
    "tiny": GeneratorPreset(
        name="tiny",
        n_users=150,
        n_items=800,
        n_interactions=150 * 36,
        subcategories=_TINY_SUBCATEGORIES,
        mean_purchases_per_user=4.0,
        research_share=0.4,
        max_variants_per_family=6,
    ),
    # The README's main command (the whole pipeline, LLM fine-tuning included, in ~15 minutes): ~7,500
    # purchase targets; 24 interactions per user, twice Table 1's, for train targets, yet not so dense that
    # no target is new (cold share ~16% here vs ~35% at Table 1 sparsity).
    "demo": GeneratorPreset(
        name="demo",
        n_users=2_500,
        n_items=8_000,
        n_interactions=2_500 * 24,
        subcategories=_DEMO_SUBCATEGORIES,
        mean_purchases_per_user=3.0,
        research_share=0.4,
        max_variants_per_family=8,
    ),
    # Table 1 of arXiv 2410.11327, one category each.
    "luggage": GeneratorPreset(
        name="luggage",
        n_users=10_611,
        n_items=61_550,
        n_interactions=131_647,
        categories=("Luggage & Bags",),
    ),
    "footwear": GeneratorPreset(
        name="footwear",
        n_users=63_273,
        n_items=380_385,
        n_interactions=714_628,
        categories=("Footwear",),
        # Table 1's shortest sequences (11.3 per user), and shoes have many sizes (more variant clicks)
        mean_purchases_per_user=1.5,
    ),
    "accessories": GeneratorPreset(
        name="accessories",
        n_users=106_104,
        n_items=524_433,
        n_interactions=1_376_999,
        categories=("Accessories & Jewelry",),
    ),
    "clothing": GeneratorPreset(
        name="clothing",
        n_users=274_285,
        n_items=1_386_910,
        n_interactions=3_635_414,
        categories=("Clothing",),
    ),
}
