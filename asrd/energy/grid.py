"""Grid carbon intensity for CO2e: a fixed value, or a country's yearly average from a small table.

Location-based, operational only (no embodied carbon). asrd never locates the user over the network
(codecarbon and CarbonTracker geolocate by IP): the user names the zone.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Yearly average life-cycle intensity of electricity generation, g CO2e per kWh, year 2023.
#: Source: Ember and Energy Institute, via Our World in Data's energy dataset (CC BY 4.0), the values
#: codecarbon 3.3 ships. A handful of zones only; set ``[energy] grid_g_per_kwh`` for any other.
ZONES_2023: dict[str, float] = {
    "DE": 381.0,
    "FR": 56.0,
    "GB": 238.0,
    "NO": 30.0,
    "PL": 662.0,
    "US": 369.0,
}
ZONE_SOURCE = "Ember / Our World in Data 2023 yearly average (CC BY 4.0)"


@dataclass(frozen=True)
class Intensity:
    g_per_kwh: float
    source: str


def intensity(g_per_kwh: float, zone: str) -> Intensity | None:
    """The configured intensity, or None when neither a value nor a known zone is set."""
    if g_per_kwh > 0:
        return Intensity(g_per_kwh, "configured ([energy] grid_g_per_kwh)")
    value = ZONES_2023.get(zone.strip().upper())
    return None if value is None else Intensity(value, f"{zone.upper()}: {ZONE_SOURCE}")


def unknown_zone(zone: str) -> bool:
    return bool(zone.strip()) and zone.strip().upper() not in ZONES_2023
