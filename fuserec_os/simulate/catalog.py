"""A seeded, realistic e-commerce catalog generator.

Why it exists: the demo, the tests and the benchmarks need a catalog that behaves like a real one
(synonyms in titles, skewed category sizes, heavy-tailed popularity, prices that depend on brand and
quality) without shipping private data. Each product also gets *latent* attributes (style, quality
tier, price band, appeal) that the shopper simulator will base user preferences on. Latents are kept
out of the public document so that a ranker can only learn them from behaviour, as in production.

Everything is driven by one ``random.Random(seed)``, never the global RNG, so a seed fully determines
the output. A fixed reference date (2026-01-01 UTC) keeps ``created_at`` independent of today.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fuserec_os.index.validate import PRODUCT_FIELDS

__all__ = [
    "BRANDS",
    "CATEGORY_PATHS",
    "CATEGORY_TREE",
    "DOC_KEYS",
    "PRICE_BANDS",
    "REFERENCE_DATE",
    "STYLES",
    "Brand",
    "GeneratedProduct",
    "LeafSpec",
    "ProductLatent",
    "generate_catalog",
    "latent_path_for",
    "write_catalog",
]

REFERENCE_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)
"""``created_at`` lies within the two years before this date, so output never depends on today."""

STYLES: tuple[str, ...] = ("sporty", "classic", "modern", "outdoor", "minimalist", "luxury", "casual")
PRICE_BANDS: tuple[str, ...] = ("budget", "mid", "premium")

DOC_KEYS: tuple[str, ...] = PRODUCT_FIELDS
"""The public document's keys, in output order; nothing latent may appear here."""

_FORMATS: dict[str, str] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class ProductLatent:
    """Hidden truth about a product that simulated shoppers react to but the index never sees."""

    style: str
    quality_tier: int  # 1 budget, 2 mid, 3 premium
    price_band: str  # "budget" | "mid" | "premium", relative to the product type's usual price
    appeal: float  # 0..1 hidden attractiveness (design, photos, ...)


@dataclass(frozen=True)
class GeneratedProduct:
    """One catalog row (``doc``, exactly :data:`DOC_KEYS`) plus its latent attributes."""

    doc: dict[str, Any]
    latent: ProductLatent


@dataclass(frozen=True)
class LeafSpec:
    """Vocabulary and pricing for one leaf category.

    ``nouns[0]`` is the canonical product-type noun, the rest are synonyms used in titles and
    descriptions so that query-side synonym handling has something to find. ``materials`` run from
    cheap to premium, so quality tier can pick from the right end. ``title_attrs`` are attribute keys
    whose value is written in front of the noun ("Wireless Headphones"). ``weight`` sets the leaf's
    share of the catalog, deliberately unequal.
    """

    nouns: tuple[str, ...]
    base_price: float
    weight: float
    materials: tuple[str, ...]
    features: tuple[str, ...]
    uses: tuple[str, ...]
    tags: tuple[str, ...]
    attributes: Mapping[str, tuple[str, ...]]
    genders: tuple[str, ...] = ()
    title_attrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Brand:
    """A brand: ``price_level`` multiplies the base price, ``quality_bias`` is its mean quality tier."""

    name: str
    price_level: float
    quality_bias: float
    styles: tuple[str, ...]
    models: tuple[str, ...]
    share: float = 1.0  # relative market share within its top-level category


_APPAREL_COLORS = ("black", "white", "navy", "gray", "blue", "red", "green", "beige", "olive", "pink")
_SHOE_SIZES = tuple(f"US {s}" for s in ("6", "7", "8", "8.5", "9", "9.5", "10", "10.5", "11", "12", "13"))
_CLOTHING_SIZES = ("XS", "S", "M", "M", "L", "L", "XL", "XXL")
_TECH_COLORS = ("black", "black", "white", "silver", "space gray", "navy", "midnight blue", "rose gold")

CATEGORY_TREE: Mapping[str, Mapping[str, LeafSpec]] = {
    "electronics": {
        "headphones": LeafSpec(
            nouns=("headphones", "earbuds", "headset", "earphones", "over-ear headphones"),
            base_price=89.0,
            weight=9,
            materials=("ABS plastic", "silicone", "memory foam", "aluminium", "protein leather"),
            features=(
                "active noise cancelling",
                "up to 30 hours of battery life",
                "Bluetooth 5.3",
                "a built-in microphone for calls",
                "fast USB-C charging",
                "a sweat-resistant design",
                "transparency mode",
                "multipoint pairing",
            ),
            uses=("commuting", "workouts", "travel", "working from home", "gaming"),
            tags=("wireless", "bluetooth", "noise-cancelling", "audio", "headphones"),
            attributes={
                "color": _TECH_COLORS,
                "connectivity": ("wireless", "wireless", "wireless", "wired"),
                "form_factor": ("over-ear", "on-ear", "in-ear", "in-ear"),
            },
            title_attrs=("connectivity",),
        ),
        "laptops": LeafSpec(
            nouns=("laptop", "laptop", "notebook", "ultrabook"),
            base_price=899.0,
            weight=6,
            materials=("polycarbonate", "aluminium", "magnesium alloy", "carbon fiber"),
            features=(
                "a full HD IPS display",
                "all-day battery life",
                "a backlit keyboard",
                "Wi-Fi 6E",
                "a fingerprint reader",
                "Thunderbolt 4 ports",
                "a 1080p webcam",
                "fast SSD storage",
            ),
            uses=("work", "school", "gaming", "video editing", "travel"),
            tags=("laptop", "computer", "portable", "work from home"),
            attributes={
                "color": ("silver", "space gray", "black", "blue"),
                "screen": ("13.3-inch", "14-inch", "14-inch", "15.6-inch", "16-inch"),
                "ram": ("8 GB", "16 GB", "16 GB", "32 GB"),
                "storage": ("256 GB SSD", "512 GB SSD", "512 GB SSD", "1 TB SSD"),
            },
            title_attrs=("screen",),
        ),
        "smartphones": LeafSpec(
            nouns=("smartphone", "phone", "cell phone", "mobile phone"),
            base_price=599.0,
            weight=5,
            materials=("polycarbonate", "glass and aluminium", "Gorilla Glass", "titanium"),
            features=(
                "a 6.5-inch OLED display",
                "a triple-lens camera",
                "5G connectivity",
                "wireless charging",
                "an IP68 water-resistant body",
                "a 5000 mAh battery",
                "face unlock",
            ),
            uses=("photography", "streaming", "everyday use", "mobile gaming"),
            tags=("smartphone", "5g", "unlocked", "mobile"),
            attributes={"color": _TECH_COLORS, "storage": ("64 GB", "128 GB", "128 GB", "256 GB", "512 GB")},
            title_attrs=("storage",),
        ),
        "smartwatches": LeafSpec(
            nouns=("smartwatch", "fitness tracker", "smart watch", "watch"),
            base_price=199.0,
            weight=3,
            materials=("silicone", "nylon", "stainless steel", "titanium"),
            features=(
                "heart-rate monitoring",
                "built-in GPS",
                "sleep tracking",
                "a 7-day battery",
                "water resistance to 50 m",
                "contactless payments",
            ),
            uses=("running", "fitness tracking", "everyday wear", "swimming"),
            tags=("fitness", "wearable", "gps", "smartwatch"),
            attributes={"color": _TECH_COLORS, "case_size": ("40 mm", "42 mm", "44 mm", "46 mm")},
        ),
        "speakers": LeafSpec(
            nouns=("bluetooth speaker", "speaker", "portable speaker", "wireless speaker"),
            base_price=79.0,
            weight=4,
            materials=("plastic", "rubberized plastic", "fabric mesh", "aluminium"),
            features=(
                "360-degree sound",
                "deep bass",
                "a waterproof IPX7 rating",
                "12 hours of playtime",
                "stereo pairing",
                "a built-in power bank",
            ),
            uses=("parties", "the beach", "camping", "the home office"),
            tags=("wireless", "bluetooth", "audio", "waterproof", "portable"),
            attributes={"color": _TECH_COLORS, "connectivity": ("wireless",)},
        ),
        "cameras": LeafSpec(
            nouns=("camera", "mirrorless camera", "digital camera", "action camera"),
            base_price=749.0,
            weight=1.5,
            materials=("polycarbonate", "magnesium alloy", "weather-sealed magnesium alloy"),
            features=(
                "a 24 MP sensor",
                "4K video recording",
                "in-body image stabilization",
                "fast autofocus",
                "a flip-out touchscreen",
                "dual card slots",
            ),
            uses=("travel photography", "vlogging", "portraits", "wildlife"),
            tags=("camera", "photography", "4k", "vlogging"),
            attributes={"color": ("black", "silver"), "resolution": ("20 MP", "24 MP", "33 MP", "45 MP")},
        ),
    },
    "shoes": {
        "running shoes": LeafSpec(
            nouns=("running shoes", "running shoes", "sneakers", "trainers", "runners", "road running shoes"),
            base_price=110.0,
            weight=10,
            materials=(
                "synthetic mesh",
                "engineered mesh",
                "recycled mesh",
                "engineered knit",
                "carbon-plate foam",
            ),
            features=(
                "responsive foam cushioning",
                "a breathable upper",
                "a grippy rubber outsole",
                "a padded heel collar",
                "reflective details",
                "a lightweight build",
                "a wide toe box",
            ),
            uses=("daily training", "long runs", "race day", "the gym", "walking"),
            tags=("running", "athletic", "breathable", "lightweight", "sneakers"),
            attributes={
                "color": _APPAREL_COLORS,
                "size": _SHOE_SIZES,
                "width": ("regular", "regular", "wide"),
            },
            genders=("men", "men", "women", "women", "unisex", "kids"),
        ),
        "hiking boots": LeafSpec(
            nouns=("hiking boots", "hiking boots", "trail boots", "boots", "hiking shoes"),
            base_price=140.0,
            weight=4,
            materials=(
                "synthetic leather",
                "suede",
                "nubuck leather",
                "full-grain leather",
                "Gore-Tex lined leather",
            ),
            features=(
                "a waterproof membrane",
                "a lugged Vibram-style outsole",
                "ankle support",
                "a protective toe cap",
                "a cushioned midsole",
            ),
            uses=("day hikes", "backpacking", "muddy trails", "winter walks"),
            tags=("hiking", "waterproof", "outdoor", "boots"),
            attributes={"color": ("brown", "black", "gray", "olive", "tan"), "size": _SHOE_SIZES},
            genders=("men", "women", "unisex"),
        ),
        "sneakers": LeafSpec(
            nouns=("sneakers", "sneakers", "trainers", "casual shoes", "low-top sneakers", "kicks"),
            base_price=75.0,
            weight=7,
            materials=("canvas", "synthetic leather", "suede", "leather", "premium leather"),
            features=(
                "a cushioned insole",
                "a vulcanized rubber sole",
                "a padded collar",
                "a classic low-top silhouette",
                "easy lace-up closure",
            ),
            uses=("everyday wear", "weekends", "casual outfits", "travel"),
            tags=("casual", "streetwear", "sneakers", "everyday"),
            attributes={"color": _APPAREL_COLORS, "size": _SHOE_SIZES},
            genders=("men", "women", "unisex", "kids"),
        ),
        "sandals": LeafSpec(
            nouns=("sandals", "slides", "flip-flops", "sport sandals"),
            base_price=40.0,
            weight=3,
            materials=("EVA foam", "rubber", "synthetic webbing", "cork", "leather"),
            features=("a contoured footbed", "adjustable straps", "a quick-dry design", "a non-slip sole"),
            uses=("the beach", "the pool", "summer days", "travel"),
            tags=("summer", "beach", "casual", "sandals"),
            attributes={"color": ("black", "brown", "navy", "white", "tan"), "size": _SHOE_SIZES},
            genders=("men", "women", "unisex", "kids"),
        ),
        "dress shoes": LeafSpec(
            nouns=("dress shoes", "oxfords", "loafers", "derby shoes"),
            base_price=120.0,
            weight=2,
            materials=("synthetic leather", "leather", "suede", "full-grain leather", "calfskin leather"),
            features=(
                "a Goodyear-welted sole",
                "a cushioned footbed",
                "a polished finish",
                "a leather lining",
            ),
            uses=("the office", "weddings", "formal events", "date nights"),
            tags=("formal", "office", "leather", "classic"),
            attributes={"color": ("black", "brown", "tan", "burgundy"), "size": _SHOE_SIZES},
            genders=("men", "men", "women"),
        ),
    },
    "clothing": {
        "t-shirts": LeafSpec(
            nouns=("t-shirt", "t-shirt", "tee", "crew neck tee", "tshirt", "shirt"),
            base_price=22.0,
            weight=10,
            materials=("polyester blend", "cotton", "organic cotton", "pima cotton", "merino wool"),
            features=(
                "a relaxed fit",
                "a tagless neckline",
                "pre-shrunk fabric",
                "moisture-wicking fabric",
                "reinforced seams",
                "a soft brushed finish",
            ),
            uses=("everyday wear", "layering", "workouts", "lounging"),
            tags=("basics", "cotton", "casual", "tee"),
            attributes={
                "color": _APPAREL_COLORS,
                "size": _CLOTHING_SIZES,
                "fit": ("regular", "slim", "relaxed"),
            },
            genders=("men", "women", "unisex", "kids"),
        ),
        "hoodies": LeafSpec(
            nouns=("hoodie", "hoodie", "sweatshirt", "pullover", "zip hoodie"),
            base_price=55.0,
            weight=5,
            materials=("polyester fleece", "cotton blend", "french terry", "organic cotton fleece"),
            features=("a kangaroo pocket", "ribbed cuffs", "a lined hood", "a brushed fleece interior"),
            uses=("cool evenings", "lounging", "layering", "travel"),
            tags=("cozy", "fleece", "casual", "hoodie"),
            attributes={"color": _APPAREL_COLORS, "size": _CLOTHING_SIZES},
            genders=("men", "women", "unisex", "kids"),
        ),
        "jeans": LeafSpec(
            nouns=("jeans", "jeans", "denim jeans", "denim", "slim jeans"),
            base_price=60.0,
            weight=5,
            materials=("stretch denim", "cotton denim", "selvedge denim", "organic cotton denim"),
            features=(
                "a five-pocket design",
                "a mid-rise waist",
                "a tapered leg",
                "a button fly",
                "light stretch",
            ),
            uses=("everyday wear", "weekends", "casual Fridays"),
            tags=("denim", "casual", "jeans", "everyday"),
            attributes={
                "color": ("indigo", "black", "light wash", "dark wash", "gray"),
                "size": ("28x30", "30x30", "30x32", "32x32", "34x32", "36x34"),
                "fit": ("slim", "straight", "relaxed", "skinny"),
            },
            genders=("men", "women"),
        ),
        "jackets": LeafSpec(
            nouns=("jacket", "jacket", "rain jacket", "shell jacket", "puffer jacket", "coat"),
            base_price=120.0,
            weight=4,
            materials=("nylon", "polyester", "recycled polyester", "down fill", "Gore-Tex"),
            features=(
                "a waterproof shell",
                "taped seams",
                "an adjustable hood",
                "zippered hand pockets",
                "a packable design",
                "warm insulation",
            ),
            uses=("rainy commutes", "hiking", "winter", "travel"),
            tags=("outerwear", "waterproof", "warm", "jacket"),
            attributes={"color": _APPAREL_COLORS, "size": _CLOTHING_SIZES},
            genders=("men", "women", "unisex"),
        ),
        "dresses": LeafSpec(
            nouns=("dress", "dress", "midi dress", "sundress", "wrap dress"),
            base_price=65.0,
            weight=3,
            materials=("polyester", "rayon", "linen", "cotton", "silk"),
            features=(
                "a flattering wrap silhouette",
                "side pockets",
                "an adjustable tie waist",
                "a flowy skirt",
            ),
            uses=("summer days", "weddings", "the office", "vacations"),
            tags=("summer", "dress", "feminine", "occasion"),
            attributes={"color": _APPAREL_COLORS, "size": _CLOTHING_SIZES},
            genders=("women",),
        ),
        "socks": LeafSpec(
            nouns=("socks", "crew socks", "ankle socks", "athletic socks"),
            base_price=12.0,
            weight=2,
            materials=("cotton blend", "polyester", "bamboo viscose", "merino wool"),
            features=("a cushioned sole", "arch support", "a seamless toe", "moisture-wicking yarn"),
            uses=("running", "hiking", "everyday wear", "the office"),
            tags=("socks", "basics", "multipack", "comfort"),
            attributes={
                "color": ("white", "black", "gray", "assorted"),
                "size": ("S", "M", "L"),
                "pack": ("3-pack", "6-pack"),
            },
            genders=("men", "women", "unisex", "kids"),
        ),
    },
    "home": {
        "kitchen > coffee makers": LeafSpec(
            nouns=("coffee maker", "coffee maker", "coffee machine", "drip coffee maker", "espresso machine"),
            base_price=89.0,
            weight=5,
            materials=("plastic", "BPA-free plastic", "stainless steel", "brushed stainless steel"),
            features=(
                "a programmable timer",
                "a 12-cup glass carafe",
                "a built-in grinder",
                "a milk frother",
                "an auto shut-off",
                "a reusable filter",
                "brew-strength control",
            ),
            uses=("morning coffee", "espresso drinks", "the office kitchen", "entertaining"),
            tags=("coffee", "kitchen", "appliance", "espresso"),
            attributes={
                "color": ("black", "stainless", "white", "red"),
                "capacity": ("1 cup", "5 cups", "12 cups"),
            },
        ),
        "kitchen > cookware": LeafSpec(
            nouns=("frying pan", "skillet", "saucepan", "cookware set", "nonstick pan"),
            base_price=59.0,
            weight=5,
            materials=(
                "aluminium",
                "nonstick aluminium",
                "cast iron",
                "stainless steel",
                "tri-ply stainless steel",
            ),
            features=(
                "a PFOA-free nonstick coating",
                "an ergonomic handle",
                "even heat distribution",
                "induction compatibility",
                "oven safe to 500F",
                "dishwasher-safe parts",
            ),
            uses=("everyday cooking", "searing", "weeknight dinners", "baking"),
            tags=("kitchen", "cookware", "nonstick", "induction"),
            attributes={"color": ("black", "silver", "red", "gray"), "diameter": ("8 in", "10 in", "12 in")},
        ),
        "kitchen > blenders": LeafSpec(
            nouns=("blender", "blender", "smoothie blender", "personal blender", "countertop blender"),
            base_price=69.0,
            weight=3,
            materials=("plastic", "BPA-free Tritan", "glass", "stainless steel"),
            features=("a 1000-watt motor", "pulse control", "a to-go cup", "preset programs", "a tamper"),
            uses=("smoothies", "soups", "frozen drinks", "meal prep"),
            tags=("kitchen", "appliance", "smoothies", "blender"),
            attributes={
                "color": ("black", "white", "silver", "red"),
                "capacity": ("20 oz", "48 oz", "64 oz"),
            },
        ),
        "bedding > sheets": LeafSpec(
            nouns=("sheet set", "bed sheets", "sheets", "bedding set"),
            base_price=49.0,
            weight=4,
            materials=("microfiber", "cotton percale", "bamboo lyocell", "linen", "Egyptian cotton"),
            features=(
                "deep pockets",
                "a breathable weave",
                "a wrinkle-resistant finish",
                "a silky sateen feel",
            ),
            uses=("hot sleepers", "guest rooms", "all seasons"),
            tags=("bedding", "bedroom", "soft", "sheets"),
            attributes={
                "color": ("white", "gray", "navy", "sage", "ivory"),
                "size": ("twin", "full", "queen", "king"),
            },
        ),
        "decor > lamps": LeafSpec(
            nouns=("table lamp", "desk lamp", "floor lamp", "lamp", "LED lamp"),
            base_price=45.0,
            weight=3,
            materials=("plastic", "metal", "ceramic", "brass", "marble"),
            features=("a dimmable LED bulb", "a USB charging port", "touch control", "an adjustable arm"),
            uses=("reading", "the bedroom", "the home office", "living rooms"),
            tags=("lighting", "decor", "led", "lamp"),
            attributes={"color": ("black", "white", "gold", "brass", "gray")},
        ),
    },
    "sports & outdoors": {
        "yoga mats": LeafSpec(
            nouns=("yoga mat", "yoga mat", "exercise mat", "fitness mat", "workout mat"),
            base_price=35.0,
            weight=5,
            materials=("PVC", "TPE", "natural rubber", "cork", "natural rubber and cork"),
            features=(
                "a non-slip texture",
                "extra cushioning",
                "alignment lines",
                "a carrying strap",
                "a sweat-resistant surface",
            ),
            uses=("yoga", "pilates", "home workouts", "stretching"),
            tags=("yoga", "fitness", "non-slip", "eco"),
            attributes={
                "color": ("purple", "black", "blue", "green", "pink", "gray"),
                "thickness": ("4 mm", "6 mm", "6 mm", "8 mm"),
            },
        ),
        "tents": LeafSpec(
            nouns=("tent", "camping tent", "backpacking tent", "dome tent"),
            base_price=160.0,
            weight=3,
            materials=("polyester", "ripstop polyester", "ripstop nylon", "silnylon"),
            features=(
                "a waterproof rainfly",
                "aluminium poles",
                "two doors",
                "a quick-pitch design",
                "mesh vents",
            ),
            uses=("camping", "backpacking", "festivals", "family trips"),
            tags=("camping", "outdoor", "waterproof", "tent"),
            attributes={
                "color": ("green", "orange", "gray", "blue"),
                "capacity": ("1-person", "2-person", "4-person", "6-person"),
            },
        ),
        "backpacks": LeafSpec(
            nouns=("backpack", "backpack", "daypack", "hiking backpack", "rucksack"),
            base_price=70.0,
            weight=5,
            materials=("polyester", "nylon", "recycled nylon", "ripstop nylon", "waxed canvas"),
            features=(
                "a padded laptop sleeve",
                "a hydration port",
                "a ventilated back panel",
                "water-resistant fabric",
                "hip-belt pockets",
            ),
            uses=("hiking", "commuting", "travel", "school"),
            tags=("backpack", "hiking", "travel", "outdoor"),
            attributes={
                "color": ("black", "gray", "green", "blue", "red"),
                "volume": ("18 L", "25 L", "30 L", "45 L"),
            },
        ),
        "dumbbells": LeafSpec(
            nouns=("dumbbells", "dumbbell set", "adjustable dumbbells", "kettlebell", "hand weights"),
            base_price=80.0,
            weight=3,
            materials=("vinyl", "neoprene", "cast iron", "rubber-coated steel", "chrome steel"),
            features=("a non-slip grip", "a quick-change weight dial", "a storage tray", "hexagonal heads"),
            uses=("strength training", "home workouts", "the gym", "rehab"),
            tags=("fitness", "strength", "home gym", "weights"),
            attributes={"weight": ("5 lb", "10 lb", "25 lb", "52.5 lb")},
        ),
        "water bottles": LeafSpec(
            nouns=("water bottle", "water bottle", "insulated bottle", "tumbler", "sports bottle"),
            base_price=25.0,
            weight=4,
            materials=("BPA-free plastic", "Tritan", "stainless steel", "double-wall stainless steel"),
            features=("a leak-proof lid", "24-hour cold retention", "a carry loop", "a wide mouth"),
            uses=("the gym", "hiking", "the office", "school"),
            tags=("hydration", "insulated", "eco", "reusable"),
            attributes={
                "color": ("black", "white", "teal", "pink", "green"),
                "capacity": ("20 oz", "32 oz", "40 oz"),
            },
        ),
    },
    "beauty": {
        "skincare": LeafSpec(
            nouns=("face moisturizer", "moisturizer", "face cream", "serum", "night cream"),
            base_price=28.0,
            weight=6,
            materials=("aloe vera", "hyaluronic acid", "niacinamide", "vitamin C", "retinol", "ceramides"),
            features=(
                "fragrance-free formula",
                "SPF 30 protection",
                "a lightweight texture",
                "dermatologist-tested",
            ),
            uses=("dry skin", "sensitive skin", "daily routines", "anti-aging care"),
            tags=("skincare", "vegan", "cruelty-free", "hydrating"),
            attributes={
                "skin_type": ("dry", "oily", "combination", "sensitive", "all"),
                "volume": ("30 ml", "50 ml"),
            },
        ),
        "hair care": LeafSpec(
            nouns=("shampoo", "conditioner", "hair mask", "shampoo and conditioner set"),
            base_price=16.0,
            weight=4,
            materials=("coconut oil", "argan oil", "keratin", "tea tree oil", "biotin"),
            features=("a sulfate-free formula", "color-safe care", "a fresh scent", "frizz control"),
            uses=("curly hair", "color-treated hair", "daily washing", "damaged hair"),
            tags=("haircare", "sulfate-free", "vegan", "salon"),
            attributes={"hair_type": ("curly", "straight", "colored", "all"), "volume": ("250 ml", "500 ml")},
        ),
        "makeup": LeafSpec(
            nouns=("lipstick", "mascara", "foundation", "eyeshadow palette", "concealer"),
            base_price=20.0,
            weight=4,
            materials=("mineral pigments", "vitamin E", "jojoba oil", "shea butter"),
            features=("long-wearing color", "a smudge-proof finish", "buildable coverage", "a matte finish"),
            uses=("everyday looks", "night out", "the office", "special occasions"),
            tags=("makeup", "cruelty-free", "long-lasting", "beauty"),
            attributes={
                "shade": ("nude", "rose", "berry", "ivory", "beige", "espresso"),
                "finish": ("matte", "satin", "dewy"),
            },
        ),
        "fragrance": LeafSpec(
            nouns=("eau de parfum", "perfume", "cologne", "eau de toilette"),
            base_price=75.0,
            weight=2,
            materials=("bergamot", "sandalwood", "vanilla", "jasmine", "oud"),
            features=(
                "long-lasting wear",
                "a refillable bottle",
                "warm woody notes",
                "a fresh citrus opening",
            ),
            uses=("evenings", "everyday wear", "gifting", "special occasions"),
            tags=("fragrance", "gift", "luxury", "scent"),
            attributes={
                "volume": ("30 ml", "50 ml", "100 ml"),
                "scent": ("floral", "woody", "citrus", "oriental"),
            },
            genders=("women", "men", "unisex"),
        ),
    },
    "toys": {
        "building sets": LeafSpec(
            nouns=("building set", "building blocks", "construction set", "brick set"),
            base_price=45.0,
            weight=4,
            materials=("ABS plastic", "recycled plastic", "wood", "plant-based plastic"),
            features=(
                "step-by-step instructions",
                "compatible bricks",
                "minifigures included",
                "a motorized part",
            ),
            uses=("creative play", "STEM learning", "family time", "gifting"),
            tags=("stem", "kids", "creative", "gift"),
            attributes={"age": ("4+", "6+", "8+", "12+"), "pieces": ("150", "500", "1200")},
        ),
        "board games": LeafSpec(
            nouns=("board game", "board game", "strategy game", "party game", "card game"),
            base_price=30.0,
            weight=3,
            materials=("cardboard", "wood", "linen-finish cards", "premium miniatures"),
            features=("quick 30-minute rounds", "easy-to-learn rules", "2 to 6 players", "high replay value"),
            uses=("game night", "family time", "parties", "travel"),
            tags=("family", "game night", "strategy", "gift"),
            attributes={"age": ("8+", "10+", "14+"), "players": ("2-4", "2-6", "3-8")},
        ),
        "dolls": LeafSpec(
            nouns=("doll", "fashion doll", "baby doll", "dollhouse"),
            base_price=25.0,
            weight=2,
            materials=("vinyl", "plush fabric", "wood", "organic cotton"),
            features=("outfit changes", "accessories included", "poseable limbs", "soft washable body"),
            uses=("pretend play", "gifting", "storytelling"),
            tags=("kids", "pretend play", "gift", "doll"),
            attributes={"age": ("3+", "4+", "6+")},
        ),
        "rc cars": LeafSpec(
            nouns=("RC car", "remote control car", "monster truck", "RC truck", "drone"),
            base_price=55.0,
            weight=2,
            materials=("plastic", "rubber tires", "aluminium chassis", "carbon fiber"),
            features=(
                "a rechargeable battery",
                "2.4 GHz control",
                "speeds up to 20 mph",
                "all-terrain tires",
            ),
            uses=("backyard racing", "outdoor play", "gifting"),
            tags=("kids", "outdoor", "rc", "gift"),
            attributes={"color": ("red", "blue", "black", "green", "yellow"), "age": ("6+", "8+", "14+")},
        ),
        "puzzles": LeafSpec(
            nouns=("jigsaw puzzle", "jigsaw puzzle", "puzzle", "3D puzzle"),
            base_price=18.0,
            weight=2,
            materials=("recycled cardboard", "cardboard", "wood", "premium linen board"),
            features=("precision-cut pieces", "a poster guide", "glare-free finish", "a storage box"),
            uses=("family time", "relaxing evenings", "gifting"),
            tags=("puzzle", "family", "gift", "relaxing"),
            attributes={"pieces": ("300", "500", "1000", "2000")},
        ),
    },
}
"""Top-level category -> leaf path (below the top) -> vocabulary; leaf paths may have two levels."""

CATEGORY_PATHS: tuple[str, ...] = tuple(f"{top} > {leaf}" for top, leaves in CATEGORY_TREE.items() for leaf in leaves)
"""Every valid ``category`` value, e.g. ``"home > kitchen > coffee makers"``."""

BRANDS: Mapping[str, tuple[Brand, ...]] = {
    "electronics": (
        Brand("Auralis", 1.35, 2.6, ("modern", "minimalist", "luxury"), ("Pulse", "Aura", "Echo", "Studio"), 1.6),
        Brand("Voltrix", 0.7, 1.4, ("sporty", "modern", "casual"), ("Boost", "Spark", "Volt", "Rush"), 1.4),
        Brand("Novatek", 1.0, 2.0, ("modern", "classic"), ("Nova", "Zen", "Vector", "Prime"), 2.0),
        Brand("Orbyx", 0.85, 1.8, ("modern", "sporty"), ("Orbit", "Flux", "Pixel", "Core"), 1.0),
        Brand("Helio Labs", 1.6, 2.8, ("minimalist", "luxury"), ("Solstice", "Halo", "Lumen"), 0.7),
        Brand("Kestrel", 1.1, 2.2, ("outdoor", "sporty"), ("Ridge", "Talon", "Glide"), 0.8),
        Brand("BasicTech", 0.6, 1.2, ("casual", "modern"), ("Essential", "Go", "One"), 1.2),
    ),
    "shoes": (
        Brand("Stridewell", 1.1, 2.3, ("sporty", "modern"), ("Pacer", "Tempo", "Glide", "Vaporfly"), 2.0),
        Brand("Aeropace", 1.3, 2.5, ("sporty", "minimalist"), ("Cloud", "Zephyr", "Swift", "Aero"), 1.5),
        Brand("Trailcrest", 1.2, 2.4, ("outdoor", "classic"), ("Summit", "Ridge", "Cascade", "Timber"), 1.0),
        Brand("Kinetix", 0.75, 1.6, ("sporty", "casual"), ("Dash", "Sprint", "Flex", "Pulse"), 1.4),
        Brand("Urbano", 0.9, 1.9, ("casual", "modern", "classic"), ("Metro", "Avenue", "Loft", "District"), 1.2),
        Brand("Fleetfoot", 0.6, 1.2, ("casual", "sporty"), ("Comfort", "Easy", "Daily"), 1.0),
        Brand("Monarch & Vale", 2.0, 2.9, ("luxury", "classic"), ("Windsor", "Chelsea", "Regent"), 0.4),
    ),
    "clothing": (
        Brand("Northloom", 1.0, 2.2, ("classic", "outdoor"), ("Heritage", "Fjord", "Alpine", "Harbor"), 1.3),
        Brand("Basics Co.", 0.6, 1.3, ("casual", "minimalist"), ("Everyday", "Essential", "Core"), 2.0),
        Brand("Harbor & Pine", 1.25, 2.4, ("classic", "casual"), ("Coastline", "Marina", "Driftwood"), 1.0),
        Brand("Urbano", 0.9, 1.9, ("modern", "casual"), ("Metro", "Avenue", "Loft"), 1.2),
        Brand("Velour Atelier", 2.0, 2.9, ("luxury", "minimalist"), ("Maison", "Soir", "Atelier"), 0.4),
        Brand("Everthread", 1.05, 2.3, ("minimalist", "classic"), ("Organic", "Pure", "Loom"), 0.9),
        Brand("Kinetix", 0.8, 1.7, ("sporty", "casual"), ("Dri-Flex", "Sprint", "Training"), 1.3),
    ),
    "home": (
        Brand("Brewhaus", 1.1, 2.3, ("classic", "modern"), ("Barista", "Crema", "Morning", "Roast"), 1.2),
        Brand("Hearthline", 0.9, 2.0, ("classic", "casual"), ("Hearth", "Cottage", "Everyday"), 1.5),
        Brand("Casa Nova", 1.3, 2.4, ("modern", "minimalist"), ("Luna", "Terra", "Sol", "Nido"), 1.0),
        Brand("Kitchora", 0.75, 1.7, ("modern", "casual"), ("Chef", "Prep", "Swift", "Pro"), 1.3),
        Brand("Lumen & Oak", 1.7, 2.8, ("luxury", "minimalist", "classic"), ("Nordic", "Atelier", "Oak"), 0.5),
        Brand("ValueHome", 0.6, 1.2, ("casual",), ("Basic", "Simple", "Home"), 1.4),
    ),
    "sports & outdoors": (
        Brand("Summitry", 1.35, 2.6, ("outdoor", "classic"), ("Alpine", "Traverse", "Basecamp", "Peak"), 1.0),
        Brand("Trailcrest", 1.15, 2.3, ("outdoor", "sporty"), ("Summit", "Ridge", "Cascade"), 1.2),
        Brand("Zenflow", 1.1, 2.3, ("minimalist", "sporty"), ("Balance", "Lotus", "Flow", "Align"), 1.1),
        Brand("IronPeak", 0.95, 2.0, ("sporty",), ("Titan", "Forge", "Power", "Core"), 0.9),
        Brand("Kinetix", 0.75, 1.6, ("sporty", "casual"), ("Active", "Flex", "Sprint"), 1.4),
        Brand("Hydrava", 1.0, 2.1, ("outdoor", "modern"), ("Flow", "Chill", "Trek"), 0.9),
        Brand("CampMate", 0.6, 1.3, ("outdoor", "casual"), ("Scout", "Trail", "Weekend"), 1.2),
    ),
    "beauty": (
        Brand("Lumiere", 1.5, 2.6, ("luxury", "classic"), ("Radiance", "Eclat", "Lumière"), 0.8),
        Brand(
            "Pure Botanica",
            1.0,
            2.2,
            ("minimalist", "outdoor"),
            ("Green Tea", "Rose", "Aloe", "Botanic"),
            1.2,
        ),
        Brand("Glowlab", 0.85, 1.9, ("modern", "casual"), ("Glow", "Hydra Boost", "Dew"), 1.5),
        Brand("Velvet & Rose", 1.9, 2.9, ("luxury",), ("Noir", "Velvet", "Rosé"), 0.5),
        Brand("DermaCare", 0.8, 2.0, ("minimalist", "classic"), ("Gentle", "Daily", "Barrier"), 1.4),
        Brand("Basics Co.", 0.6, 1.3, ("casual", "minimalist"), ("Everyday", "Essential"), 1.0),
    ),
    "toys": (
        Brand("Brickworks", 1.2, 2.5, ("modern", "classic"), ("City", "Creator", "Galaxy", "Castle"), 1.6),
        Brand("Playmakers", 0.9, 1.9, ("casual", "classic"), ("Family", "Classic", "Party"), 1.3),
        Brand("Wonderkin", 1.0, 2.2, ("classic", "minimalist"), ("Dreamy", "Meadow", "Little"), 1.0),
        Brand("Turbo Toys", 0.7, 1.5, ("sporty", "casual"), ("Blaze", "Thunder", "Racer"), 1.1),
        Brand("Puzzlecraft", 1.05, 2.3, ("classic", "minimalist"), ("Gallery", "Panorama", "Vista"), 0.8),
    ),
}
"""Brands per top-level category. A name may recur across tops (one company, several departments)."""

_QUALITY_PRICE = {1: 0.72, 2: 1.0, 3: 1.45}
_MODEL_SUFFIXES = ("Pro", "Max", "Lite", "Plus", "X", "Air", "Elite", "GT", "2", "3")
_GENDER_LABELS = {"men": "Men's", "women": "Women's", "unisex": "Unisex", "kids": "Kids'"}
_ECO_MATERIALS = frozenset(
    {
        "recycled mesh",
        "organic cotton",
        "organic cotton fleece",
        "organic cotton denim",
        "recycled polyester",
        "recycled nylon",
        "cork",
        "natural rubber",
        "natural rubber and cork",
        "bamboo viscose",
        "bamboo lyocell",
        "recycled plastic",
        "plant-based plastic",
        "recycled cardboard",
        "linen",
    }
)
_STYLE_SENTENCES: Mapping[str, tuple[str, ...]] = {
    "sporty": (
        "Built for an active lifestyle, it keeps up when you pick up the pace.",
        "An athletic look with performance details throughout.",
    ),
    "classic": (
        "A timeless design that never goes out of style.",
        "Classic lines and trusted craftsmanship make it an easy favorite.",
    ),
    "modern": (
        "A sleek, modern design with clean lines.",
        "Contemporary styling meets smart, practical details.",
    ),
    "outdoor": (
        "Rugged enough for the trail and comfortable in town.",
        "Made to handle wind, rain and long days outside.",
    ),
    "minimalist": (
        "A clean, minimalist look that goes with everything.",
        "Pared-back design with nothing you don't need.",
    ),
    "luxury": (
        "Premium finishes and meticulous detailing set it apart.",
        "An elevated, luxurious piece made from the finest materials.",
    ),
    "casual": ("An easygoing everyday pick at a fair price.", "Relaxed, comfortable and easy to live with."),
}
_CLOSERS = (
    "Backed by a {years}-year {brand} warranty.",
    "Ships in recyclable packaging.",
    "Customers love {it} for {use}.",
    "A great gift for anyone who needs {dependable_noun2}.",
    "Also a smart pick as {a_noun2} for {use}.",
)


@dataclass(frozen=True)
class _Leaf:
    """A flattened leaf for sampling: its path, top-level name and spec."""

    top: str
    path: str
    spec: LeafSpec


def _cap(text: str) -> str:
    """Title-case for titles without ``str.title`` damage ("RC car" stays "RC Car", not "Rc Car")."""
    return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))


def _is_plural(noun: str) -> bool:
    """Crude English plural check so descriptions say "these sneakers are" but "this dress is"."""
    last = noun.split(" ")[-1]
    return last.endswith("s") and not last.endswith("ss")


def _with_article(noun: str) -> str:
    """ "a blender", "an espresso machine", but plain "trainers" for plurals."""
    if _is_plural(noun):
        return noun
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _model_name(rng: random.Random, brand: Brand) -> str:
    """A product-line name like "Pegasus 41", "Pulse Pro" or "Aura"."""
    stem = rng.choice(brand.models)
    r = rng.random()
    if r < 0.4:
        return f"{stem} {rng.randint(1, 45)}"
    if r < 0.75:
        return f"{stem} {rng.choice(_MODEL_SUFFIXES)}"
    return stem


def _pick_material(rng: random.Random, materials: tuple[str, ...], tier: int) -> str:
    """Budget products draw from the cheap end of the list, premium ones from the expensive end."""
    k = len(materials)
    lo = k // 3 if tier == 3 else 0
    hi = k if tier > 1 else max(1, k - k // 3)
    return rng.choice(materials[lo:hi])


def _charm_price(value: float) -> float:
    """Round like a shop does: 2 decimals, and ``x.99`` above $20 so prices look real."""
    if value >= 20.0:
        return float(max(round(value), 20) - 0.01)
    return round(max(value, 0.99), 2)


def _description(
    rng: random.Random,
    spec: LeafSpec,
    brand: Brand,
    noun: str,
    material: str,
    style: str,
    tier: int,
    html: bool,
) -> str:
    """2-4 sentences from the leaf vocabulary; a few rows get ``<b>``/``<br>`` like real feeds."""
    plural = _is_plural(noun)
    this, be = ("These", "are") if plural else ("This", "is")
    uses = rng.sample(spec.uses, k=min(2, len(spec.uses)))
    n_features = min(len(spec.features), 1 + tier + (1 if rng.random() < 0.3 else 0))
    features = rng.sample(spec.features, k=n_features)
    if html:
        features[0] = f"<b>{features[0]}</b>"
    feat_text = features[0] if len(features) == 1 else ", ".join(features[:-1]) + " and " + features[-1]
    other_nouns = [x for x in spec.nouns if x != noun] or [noun]
    noun2 = rng.choice(other_nouns)
    dependable = f"dependable {noun2}"

    sentences = [
        f"{this} {brand.name} {noun} {be} made with {material} and designed for {uses[0]}.",
        f"Features include {feat_text}.",
    ]
    if rng.random() < 0.7:
        sentences.append(rng.choice(_STYLE_SENTENCES[style]))
    if rng.random() < 0.6:
        closer = rng.choice(_CLOSERS).format(
            years=rng.choice((1, 2, 2, 3)),
            brand=brand.name,
            use=uses[-1],
            it="them" if plural else "it",
            a_noun2=_with_article(noun2),
            dependable_noun2=dependable if _is_plural(noun2) else f"a {dependable}",
        )
        sentences.append(closer)
    return ("<br>" if html else " ").join(sentences)


def _flat_leaves() -> list[_Leaf]:
    """All leaves in a fixed order, so weighted sampling is reproducible."""
    return [
        _Leaf(top, f"{top} > {leaf}", spec) for top, leaves in CATEGORY_TREE.items() for leaf, spec in leaves.items()
    ]


def generate_catalog(n: int, seed: int = 7) -> list[GeneratedProduct]:
    """Generate ``n`` products deterministically from ``seed``.

    The causal chain is what makes the data useful for learning-to-rank: brand -> quality tier ->
    price and rating; appeal -> rating and popularity; popularity x age -> review count. The
    shopper simulator can then give users preferences over the latent fields and see them reflected
    in clicks, while the public docs only show their noisy consequences.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1 (the number of products to generate), got {n!r}")
    rng = random.Random(seed)
    leaves = _flat_leaves()
    leaf_weights = [leaf.spec.weight for leaf in leaves]
    brand_weights = {top: [b.share for b in brands] for top, brands in BRANDS.items()}
    span_seconds = 2 * 365 * 24 * 3600
    width = max(6, len(str(n)))

    products: list[GeneratedProduct] = []
    for i in range(1, n + 1):
        pid = f"P{i:0{width}d}"
        leaf = rng.choices(leaves, weights=leaf_weights)[0]
        spec = leaf.spec
        brand = rng.choices(BRANDS[leaf.top], weights=brand_weights[leaf.top])[0]

        tier = min(3, max(1, round(brand.quality_bias + rng.gauss(0.0, 0.55))))
        style = rng.choice(brand.styles) if rng.random() < 0.8 else rng.choice(STYLES)
        appeal = round(rng.betavariate(2.0, 2.0), 4)

        raw_price = spec.base_price * brand.price_level * _QUALITY_PRICE[tier] * rng.lognormvariate(0.0, 0.22)
        price = _charm_price(raw_price)
        ratio = price / spec.base_price
        price_band = "budget" if ratio < 0.8 else ("premium" if ratio >= 1.4 else "mid")

        # True satisfaction drives popularity; the shown rating is a noisy average of reviews,
        # so products with few reviews get the extreme ratings real shops are full of.
        satisfaction = 3.95 + 0.35 * (tier - 2) + 1.0 * (appeal - 0.5) + rng.gauss(0.0, 0.25)

        # Pareto tail (alpha ~1.2) gives the Zipf-like head/tail; appeal and satisfaction tilt it.
        popularity = rng.paretovariate(1.2) * math.exp(2.0 * (appeal - 0.5) + 0.8 * (satisfaction - 4.0))
        popularity = round(popularity * brand.share, 4)

        age_seconds = rng.randint(1, span_seconds)
        created = REFERENCE_DATE - timedelta(seconds=age_seconds)
        age_frac = age_seconds / span_seconds
        review_count = int(popularity * (0.15 + 0.85 * age_frac) * rng.lognormvariate(2.3, 0.6))
        rating = satisfaction + rng.gauss(0.0, 0.15 + 0.8 / math.sqrt(1.0 + review_count))
        rating = round(min(5.0, max(1.0, rating)), 1)

        attributes: dict[str, str] = {key: rng.choice(values) for key, values in spec.attributes.items()}
        material = _pick_material(rng, spec.materials, tier)
        gender = rng.choice(spec.genders) if spec.genders else None
        if gender:
            attributes["gender"] = gender
        if leaf.top != "beauty" and "material" not in attributes:
            attributes["material"] = material
        elif leaf.top == "beauty":
            attributes["key_ingredient"] = material

        noun = spec.nouns[0] if rng.random() < 0.5 else rng.choice(spec.nouns)
        model = _model_name(rng, brand)
        parts = [brand.name, model]
        if gender:
            parts.append(_GENDER_LABELS[gender])
        parts.extend(_cap(attributes[key]) for key in spec.title_attrs if key in attributes)
        parts.append(_cap(noun))
        title = " ".join(parts)
        if "color" in attributes:
            title += f" - {_cap(attributes['color'])}"

        html = rng.random() < 0.05
        description = _description(rng, spec, brand, noun, material, style, tier, html)

        tags: list[str] = []
        for tag in rng.sample(spec.tags, k=rng.randint(1, 2)):
            tags.append(tag)
        if popularity >= 12.0:
            tags.append("bestseller")
        if material in _ECO_MATERIALS:
            tags.append("eco")
        if age_seconds < 90 * 24 * 3600:
            tags.append("new")
        if rng.random() < 0.08:
            tags.append("sale")
        if rng.random() < 0.25:
            tags.append(style)
        tags = list(dict.fromkeys(tags))[:4]

        doc: dict[str, Any] = {
            "product_id": pid,
            "title": title,
            "description": description,
            "brand": brand.name,
            "category": leaf.path,
            "price": price,
            "currency": "USD",
            "rating": rating,
            "review_count": review_count,
            "in_stock": rng.random() < 0.9,
            "tags": tags,
            "attributes": attributes,
            "image_url": f"https://img.example.com/p/{pid}.jpg",
            "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "popularity": popularity,
        }
        latent = ProductLatent(style=style, quality_tier=tier, price_band=price_band, appeal=appeal)
        products.append(GeneratedProduct(doc=doc, latent=latent))
    return products


def _format_for(path: Path) -> str:
    """Map a file extension to a writer; the error lists what is accepted so the user can fix it."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        valid = ", ".join(_FORMATS)
        raise ValueError(
            f"unsupported catalog file extension {path.suffix or '(none)'!r} for {path}; use one of: {valid}"
        )
    return fmt


def _flat_row(doc: Mapping[str, Any]) -> dict[str, Any]:
    """CSV cannot hold lists or dicts: tags become "a|b", attributes "key=value|key=value"."""
    row = dict(doc)
    row["tags"] = "|".join(doc["tags"])
    row["attributes"] = "|".join(f"{k}={v}" for k, v in doc["attributes"].items())
    return row


def _write_parquet(docs: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Explicit schema: tags as list<string>, attributes as map<string,string>.

    A map (not a struct) keeps the schema independent of which categories happen to be in the
    sample and avoids null-padding every row with every other category's attribute keys.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("product_id", pa.string()),
            ("title", pa.string()),
            ("description", pa.string()),
            ("brand", pa.string()),
            ("category", pa.string()),
            ("price", pa.float64()),
            ("currency", pa.string()),
            ("rating", pa.float64()),
            ("review_count", pa.int64()),
            ("in_stock", pa.bool_()),
            ("tags", pa.list_(pa.string())),
            ("attributes", pa.map_(pa.string(), pa.string())),
            ("image_url", pa.string()),
            ("created_at", pa.string()),
            ("popularity", pa.float64()),
        ]
    )
    table = pa.Table.from_pylist([dict(d) for d in docs], schema=schema)
    pq.write_table(table, path)


def latent_path_for(catalog: str | Path) -> Path:
    """Where ``fuserec generate catalog`` puts a catalog's hidden attributes by default (always JSON Lines)."""
    p = Path(catalog)
    return p.with_name(f"{p.stem}.latent.jsonl")


def write_catalog(
    products: Iterable[GeneratedProduct],
    path: str | Path,
    latent_path: str | Path | None = None,
) -> None:
    """Write the public docs to ``path`` (format from its extension) and, optionally, the latents.

    Docs go to JSON Lines (``.jsonl``/``.ndjson``), CSV or Parquet. Latents (``product_id`` plus the
    :class:`ProductLatent` fields) go to ``latent_path`` as JSON Lines, always a separate file:
    mixing them into the docs would let the index see the ground truth the ranker must learn.
    """
    path = Path(path)
    fmt = _format_for(path)
    latent = Path(latent_path) if latent_path is not None else None
    if latent is not None and latent.resolve() == path.resolve():
        raise ValueError(f"latent_path must differ from the catalog path ({path}); latents never go into the docs")
    items = list(products)
    docs = [p.doc for p in items]
    path.parent.mkdir(parents=True, exist_ok=True)

    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for doc in docs:
                fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(DOC_KEYS))
            writer.writeheader()
            for doc in docs:
                writer.writerow(_flat_row(doc))
    else:
        _write_parquet(docs, path)

    if latent is not None:
        latent.parent.mkdir(parents=True, exist_ok=True)
        with latent.open("w", encoding="utf-8") as fh:
            for p in items:
                row = {"product_id": p.doc["product_id"], **asdict(p.latent)}
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
