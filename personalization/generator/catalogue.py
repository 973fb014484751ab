"""Product catalogue and reference data (countries, cities) for the event generator."""

from __future__ import annotations

import csv
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import numpy as np

from personalization.tracking_plan import PROJECT_ROOT

SEEDS_DIR = PROJECT_ROOT / "seeds"
N_PRODUCTS = 500
ZIPF_EXPONENT = 1.07

# category -> (median price in currency units, log-normal sigma)
CATEGORIES: dict[str, tuple[float, float]] = {
    "electronics": (180.0, 0.6),
    "computers": (650.0, 0.45),
    "furniture": (320.0, 0.5),
    "jewelry": (240.0, 0.7),
    "fashion": (55.0, 0.5),
    "sports": (70.0, 0.6),
    "home": (40.0, 0.6),
    "garden": (35.0, 0.6),
    "beauty": (22.0, 0.45),
    "toys": (25.0, 0.5),
    "books": (14.0, 0.35),
    "grocery": (6.0, 0.45),
}
EXPENSIVE_CATEGORIES = ("electronics", "computers", "furniture", "jewelry")
CHEAP_CATEGORIES = ("books", "grocery", "beauty", "toys")

_ADJECTIVES = (
    "Classic", "Smart", "Eco", "Deluxe", "Compact", "Urban", "Vintage", "Pro", "Everyday", "Nordic",
    "Cosy", "Ultra", "Mini", "Premium", "Basic", "Bright",
)  # fmt: skip
_NOUNS = {
    "electronics": ("Headphones", "Speaker", "Camera", "Smartwatch", "Tablet"),
    "computers": ("Laptop", "Monitor", "Desktop", "Keyboard", "Dock"),
    "furniture": ("Sofa", "Desk", "Chair", "Bookshelf", "Bed Frame"),
    "jewelry": ("Ring", "Necklace", "Bracelet", "Earrings", "Watch"),
    "fashion": ("Jacket", "Sneakers", "Dress", "Jeans", "Scarf"),
    "sports": ("Yoga Mat", "Running Shoes", "Bike Helmet", "Dumbbells", "Tent"),
    "home": ("Lamp", "Rug", "Cookware Set", "Bedding", "Vase"),
    "garden": ("Planter", "Hose", "Pruner", "Seeds Pack", "Grill"),
    "beauty": ("Serum", "Lipstick", "Shampoo", "Face Cream", "Perfume"),
    "toys": ("Puzzle", "Building Set", "Plush Bear", "Board Game", "Toy Car"),
    "books": ("Novel", "Cookbook", "Biography", "Comic", "Travel Guide"),
    "grocery": ("Coffee", "Tea", "Olive Oil", "Chocolate", "Pasta"),
}


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    category: str
    price_cents: int
    popularity_rank: int

    @property
    def price(self) -> float:
        return self.price_cents / 100


# One shop, one catalogue: --seed varies behaviour, not the products, so shipped segments that
# name a product (the most popular one is P00133) mean the same thing on every generated data set.
CATALOGUE_SEED = 7


def build_catalogue(seed: int = CATALOGUE_SEED, n_products: int = N_PRODUCTS) -> list[Product]:
    """Products with Zipf-like popularity ranks and category-specific log-normal prices."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCA7A]))
    categories = list(CATEGORIES)
    cats = rng.choice(len(categories), size=n_products)
    ranks = rng.permutation(n_products) + 1
    products = []
    for i in range(n_products):
        category = categories[int(cats[i])]
        median, sigma = CATEGORIES[category]
        price = float(np.exp(rng.normal(np.log(median), sigma)))
        cents = max(99, int(round(price * 100)))
        name = (
            f"{_ADJECTIVES[int(rng.integers(len(_ADJECTIVES)))]} "
            f"{_NOUNS[category][int(rng.integers(len(_NOUNS[category])))]}"
        )
        products.append(Product(f"P{i + 1:05d}", name, category, cents, int(ranks[i])))
    return products


def popularity_weight(product: Product) -> float:
    return 1.0 / product.popularity_rank**ZIPF_EXPONENT


class Sampler:
    """Draw items with fixed weights using one uniform number (bisect on cumulative weights)."""

    __slots__ = ("items", "cum", "total")

    def __init__(self, items: list[Product], weights: list[float]) -> None:
        self.items = items
        self.cum = list(accumulate(weights))
        self.total = self.cum[-1]

    def draw(self, u: float) -> Product:
        i = bisect_right(self.cum, u * self.total)
        return self.items[min(i, len(self.items) - 1)]


def write_catalogue_csv(products: list[Product], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["product_id", "name", "category", "price", "popularity_rank"])
        for p in products:
            writer.writerow([p.product_id, p.name, p.category, f"{p.price:.2f}", p.popularity_rank])


def load_countries(path: Path = SEEDS_DIR / "ref_countries.csv") -> list[str]:
    with path.open(newline="") as handle:
        return [row["country_code"] for row in csv.DictReader(handle)]


def load_cities(path: Path = SEEDS_DIR / "ref_cities.csv") -> list[tuple[str, str]]:
    """(city, country_code) pairs, in file order."""
    with path.open(newline="") as handle:
        return [(row["city"], row["country_code"]) for row in csv.DictReader(handle)]
