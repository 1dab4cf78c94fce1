"""The cost and quality of pseudonymisation (docs/privacy.md): precision and recall per type
on the labelled set (whole and held out), the p50 of pseudonymising a 2 KB request, the
throughput on a 300-page synthèse source (~900 KB of French), and what loading the model
adds to a worker process (RSS and PSS, from /proc/self/smaps_rollup)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import pytest

from plume.privacy import detection
from plume.privacy.pseudonyms import Pseudonyms
from tests.drafting.helpers import french_source
from tests.privacy.labelled import score

pytestmark = pytest.mark.bench

PLANTED = (
    " M. Jean Dupont, demeurant 12 rue Jean Jaurès, 76000 Rouen, joignable au 06.12.34.56.78 "
    "ou à jean.dupont@example.fr, a demandé à Mme Martine Courtois de signer. "
)

_MEMORY = """
import json, sys
def rollup():
    out = {}
    with open('/proc/self/smaps_rollup') as f:
        for line in f:
            parts = line.split()
            if parts[0] in ('Rss:', 'Pss:'):
                out[parts[0][:-1]] = int(parts[1])
    return out
import plume.privacy.pseudonyms  # what a worker imports anyway
before = rollup()
from plume.privacy import detection
detection.model()
detection.detect('M. Jean Dupont habite 12 rue Jean Jaurès.')
after = rollup()
print(json.dumps({'before': before, 'after': after}))
"""


def test_precision_and_recall_per_type() -> None:
    print("\nWhole labelled set:\n" + score().table())
    print("\nHeld out (written after tuning):\n" + score(held_out=True).table())


def test_p50_of_a_2_kb_request() -> None:
    """A 2 KB request the model has not read (a conversation's first message), then the same
    requests again (their findings remembered by digest: the patterns alone run)."""
    detection.model()
    texts = [(french_source(1_700, seed=seed) + PLANTED)[:2048] for seed in range(100, 160)]
    for label in ("new to the model", "read before"):
        timings = []
        for text in texts:
            started = time.perf_counter()
            Pseudonyms(["Saint-Aubin-des-Plumes"]).protect(text)
            timings.append(time.perf_counter() - started)
        p50 = statistics.median(timings) * 1000
        p95 = sorted(timings)[int(len(timings) * 0.95)] * 1000
        print(
            f"\n2 KB request ({len(texts[0])} characters, {label}): "
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"
        )


def test_throughput_of_a_300_page_synthese_source() -> None:
    detection.model()
    source = "\n\n".join(french_source(3_000, seed=seed) + PLANTED for seed in range(300))
    started = time.perf_counter()
    protected = Pseudonyms().protect(source)
    elapsed = time.perf_counter() - started
    size = len(source.encode())
    assert "Jean Dupont" not in protected
    print(
        f"\n300-page source ({size / 1000:.0f} KB): {elapsed:.1f} s, "
        f"{size / 1000 / elapsed:.0f} KB/s"
    )


def test_memory_of_loading_the_model_in_a_worker() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY], capture_output=True, text=True, check=True
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    rss = (figures["after"]["Rss"] - figures["before"]["Rss"]) / 1024
    pss = (figures["after"]["Pss"] - figures["before"]["Pss"]) / 1024
    print(f"\nLoading {detection.MODEL_NAME} in a worker: RSS +{rss:.0f} MiB, PSS +{pss:.0f} MiB")
