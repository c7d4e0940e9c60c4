"""`doctor` for the flocking topology, on plain data: each verdict says what is wrong and what to set.

The same checks against two real pools run in tests/loop/test_flocking.py.
"""

from __future__ import annotations

from campus_factory.admin.doctor import PingResult
from campus_factory.admin.flocking import flock_to_verdict, flock_token_verdict, flocking_now_verdict, same_collector
from campus_factory.config import parse_config

FACTORY = "factory-cm.example.edu:9618"


def source():
    cfg = parse_config(
        {
            "pool": {
                "collector": FACTORY,
                "flock_from": [{"name": "campus", "collector": "cm.campus:9618", "schedds": ["submit.campus"]}],
            }
        }
    )
    return cfg.pool.flock_from[0]


def test_flock_to_entries_name_the_collector_with_or_without_the_default_port() -> None:
    assert same_collector("factory-cm.example.edu", FACTORY)
    assert same_collector("FACTORY-CM.example.edu:9618", FACTORY)
    assert not same_collector("factory-cm.example.edu:9619", FACTORY)
    assert not same_collector("other-cm.example.edu", FACTORY)
    # the collector's own advertised address (a sinful string) counts as its name too
    assert same_collector("10.0.0.5:9618", FACTORY, aliases=["<10.0.0.5:9618?addrs=10.0.0.5-9618&alias=cm>"])


def test_a_schedd_without_flock_to_or_flocking_elsewhere_fails_with_the_file_to_install() -> None:
    none = flock_to_verdict("flock to", "submit.campus", "", "", FACTORY)
    assert none.status == "fail" and "has no FLOCK_TO" in none.message
    assert "condor-config --flock-to" in none.hint and f"FLOCK_TO = $(FLOCK_TO) {FACTORY}" in none.hint
    elsewhere = flock_to_verdict("flock to", "submit.campus", "cm.other.edu", "", FACTORY)
    assert elsewhere.status == "fail" and "not to this pool's collector" in elsewhere.message
    several = flock_to_verdict("flock to", "s", "", "", FACTORY, campus="medical")
    assert "--flock-to --campus medical" in several.hint
    ok = flock_to_verdict("flock to", "submit.campus", f"cm.other.edu, {FACTORY}", "", FACTORY)
    assert ok.status == "ok"
    unread = flock_to_verdict("flock to", "submit.campus", None, "PERMISSION DENIED", FACTORY)
    assert unread.status == "warn" and "PERMISSION DENIED" in unread.message


def test_the_schedds_token_refused_by_this_collector_names_the_identity_and_the_allow_list() -> None:
    src = source()
    ok = flock_token_verdict("flock token", src, PingResult("ADVERTISE_SCHEDD", True, src.schedd_id), None)
    assert ok.status == "ok" and src.schedd_id in ok.message
    denied = PingResult("ADVERTISE_SCHEDD", False, src.schedd_id, "denied", "DENIED")
    bad = flock_token_verdict("flock token", src, denied, "$(ALLOW_DAEMON)")
    assert bad.status == "fail"
    assert "does not authorize flock-campus@campus-factory" in bad.message and "'$(ALLOW_DAEMON)'" in bad.message
    assert "--flock-from" in bad.hint and "Never allow '*'" in bad.hint
    methods = flock_token_verdict("t", src, PingResult("ADVERTISE_SCHEDD", False, None, "no-methods", "x"), None)
    assert methods.status == "fail" and "no token authentication" in methods.message
    assert flock_token_verdict("t", src, None, None).status == "skip"


def test_a_flocking_schedd_whose_submitter_ads_never_arrive_fails() -> None:
    assert flocking_now_verdict("now", "s", None, 0, FACTORY).status == "ok"
    assert flocking_now_verdict("now", "s", "cm.other.edu:9618", 0, FACTORY).status == "ok"  # not to us
    assert flocking_now_verdict("now", "s", f"cm.other.edu:9618,{FACTORY}", 2, FACTORY).status == "ok"
    lost = flocking_now_verdict("now", "s", "10.0.0.5:9618", 0, FACTORY, aliases=["<10.0.0.5:9618?a=b>"])
    assert lost.status == "fail" and "none of its submitter ads reached" in lost.message
    assert "TRUST_DOMAIN" in lost.hint
