"""The knobs of shopper behaviour: what queries mention, how pages are examined and clicked, how much
shoppers compare before buying and what makes a product appeal to them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BehaviourParams:
    """Shopper behaviour. The values are design choices that make the paper's four properties visible
    (C1-C4, arXiv 2410.11327 section 3) at realistic magnitudes; none is measured from real logs."""

    # -- what a query mentions besides the subcategory (probabilities, scaled by the user's verbosity)
    p_gender: float = 0.55
    p_color: float = 0.4
    p_occasion: float = 0.3
    p_season: float = 0.25
    p_holiday_word: float = 0.7
    p_adjective: float = 0.3
    p_material: float = 0.1
    p_brand: float = 0.12  # one of the shopper's favourite brands ("rubzoo tank tops")
    feed_brand_share: float = 0.4  # recommendation feeds built around one of the shopper's favourite brands
    refine_share: float = 0.28  # missions that start with a broad search and refine it
    rephrase_share: float = 0.07  # ... and that retype the query once more
    # -- seasonal demand multiplier of a season-s family when the calendar is in the same / an adjacent /
    # the opposite season (swimwear sells in summer, coats in winter)
    season_demand: tuple[float, float, float] = (2.2, 0.6, 0.15)
    # -- click model: examination probability ~ position^-exam_power (position bias), ads are seen less
    exam_power: float = 0.9
    sponsored_exam: float = 0.9
    buy_position_power: float = 1.5  # purchases lean even more on top organic results (the paper's C4 note)
    buy_utility_scale: float = 1.3
    clicks_buy_page: float = 0.9  # mean clicks on other products of the page a purchase comes from
    clicks_refined_page: float = 0.6  # ... of a page the user refined away from
    clicks_browse_page: float = 1.1
    clicks_research_page: float = 1.3
    clicks_feed: float = 1.0
    # -- comparison before buying (C2): extra variant clicks of the bought family, P(0..4 variants)
    variant_clicks: tuple[float, ...] = (0.15, 0.3, 0.27, 0.16, 0.12)
    size_variant_share: float = 0.15  # a variant click that changes size instead of color
    other_variant_share: float = 0.2  # clicked non-bought products whose second color is clicked too
    # share of result slots that show the shopper's favourite color of the product instead of its lead color
    # (shops personalise swatches from browsing history, as they preselect the shopper's size)
    personal_display: float = 0.5
    display_bias: float = 0.7  # preference for buying the variant the page showed over a compared one
    cart_share: float = 0.55  # purchases preceded by an add-to-cart
    abandoned_cart_share: float = 0.06
    browse_cart_share: float = 0.07
    # missions after a user's first that buy again an article the user bought for themselves before
    # (basics, a favourite), when it is still on sale: docs/synthetic-data.md, "Repeat purchases"
    article_rebuy_share: float = 0.3
    family_rebuy_share: float = 0.12  # feed purchases that re-buy an earlier family in another color
    chase_share: float = 0.5  # research sessions click the product bought days later when it is listed
    research_days: tuple[int, int] = (1, 14)
    # -- utility of a product for a user (log-odds)
    w_brand: float = 1.6
    w_color: float = 0.6
    w_tier: float = 0.7
    w_occasion: float = 0.5
    w_gender: float = 2.5
    w_size: float = 1.5
    w_in_season: float = 0.4
    w_off_season: float = 0.8
    w_novelty: float = 1.6
    novelty_days: float = 21.0
    w_holiday: float = 1.5
    w_popularity: float = 0.3
    w_style: float = 0.6
    w_subcat: float = 1.0
    feed_page: int = 8
    sponsored_counts: tuple[float, ...] = (0.3, 0.35, 0.25, 0.1)  # P(0..3 ads on a page)
