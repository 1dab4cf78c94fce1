"""Energy and greenhouse-gas estimates of a request, with the EcoLogits methodology.

The only module that imports `ecologits`. EcoLogits models a request's energy from the
model's active parameters, the number of output tokens and the generation time (GPU energy
per token fitted on measured H100 inference, the server's other power, a datacenter PUE),
and its emissions from that energy and the electricity mix of the zone where it runs, plus
the hardware's embodied emissions (see docs/usage.md). A model whose parameters are unknown
has no estimate: `None`, never a silent zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ecologits.electricity_mix_repository import electricity_mixes
from ecologits.impacts.llm import compute_llm_impacts

DEFAULT_ZONE = "FRA"
DEFAULT_PUE = 1.2
# The offline provider runs in the API process: one CPU core's share of a server (15 W)
# for the request's duration, with the same PUE, on the French mix.
OFFLINE_POWER_W = 15.0


@dataclass(frozen=True, slots=True)
class Footprint:
    energy_kwh: float | None
    gwp_kgco2eq: float | None

    @classmethod
    def unknown(cls) -> Footprint:
        return cls(None, None)


@cache
def _mix(zone: str) -> tuple[float, float, float, float] | None:
    found = electricity_mixes.find_electricity_mix(zone=zone)
    if found is None:
        return None
    return found.adpe, found.pe, found.gwp, found.wue


def known_zone(zone: str) -> bool:
    return _mix(zone) is not None


def _value(measure: object) -> float:
    """A figure, or the middle of a range."""
    value = getattr(measure, "value", measure)
    if hasattr(value, "min") and hasattr(value, "max"):
        return (float(value.min) + float(value.max)) / 2
    return float(value)  # type: ignore[arg-type]


def llm_footprint(
    *,
    total_params_b: float,
    active_params_b: float,
    zone: str,
    pue: float,
    output_tokens: int,
    latency_s: float,
) -> Footprint:
    mix = _mix(zone)
    if mix is None or output_tokens <= 0:
        return Footprint(0.0, 0.0) if mix is not None else Footprint.unknown()
    adpe, pe, gwp, wue = mix
    impacts = compute_llm_impacts(
        model_active_parameter_count=active_params_b,
        model_total_parameter_count=total_params_b,
        output_token_count=output_tokens,
        request_latency=max(latency_s, 1e-3),
        if_electricity_mix_adpe=adpe,
        if_electricity_mix_pe=pe,
        if_electricity_mix_gwp=gwp,
        if_electricity_mix_wue=wue,
        datacenter_pue=pue,
        datacenter_wue=0.0,
    )
    return Footprint(_value(impacts.energy), _value(impacts.gwp))


def process_footprint(latency_s: float, zone: str = DEFAULT_ZONE) -> Footprint:
    """The offline provider: the API process's own share, for as long as it composed."""
    mix = _mix(zone)
    energy = DEFAULT_PUE * OFFLINE_POWER_W * max(latency_s, 0.0) / 3_600_000
    return Footprint(energy, energy * mix[2] if mix else None)
