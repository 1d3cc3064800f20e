"""betula.cache.BoundedCache: the one policy every per-request memo of the server follows."""

from betula.cache import BoundedCache


def test_hits_are_plain_dict_lookups_and_misses_return_none():
    assert type(BoundedCache(1).entries) is dict  # exact: CPython specialises its calls
    cache = BoundedCache(4)
    assert cache.keep("a", 1) == 1
    assert cache.entries.get("a") == 1 and cache.entries.get("b") is None
    assert cache.recall("b") is None and cache.lookup("b") is None


def test_a_full_generation_ages_and_a_new_one_starts():
    cache = BoundedCache(3)
    for key in "abc":
        cache.keep(key, key.upper())
    assert cache.rotations == 0 and len(cache) == 3
    cache.keep("d", "D")  # the fourth key ends the first generation
    assert cache.rotations == 1 and cache.entries == {"d": "D"}
    assert cache.entries.get("a") is None  # no longer in the current generation ...
    assert cache.recall("a") == "A"  # ... but recalled from the one before, and moved back
    assert cache.entries.get("a") == "A" and cache.recall("a") is None


def test_keys_in_use_survive_any_number_of_distinct_keys():
    cache = BoundedCache(8)
    cache.keep("hot", 0)
    for i in range(10_000):
        cache.keep(i, i)
        assert cache.lookup("hot") == 0  # used once per generation at least: kept
        assert len(cache) + len(cache.previous) <= 2 * 8
    assert cache.rotations > 1000


def test_a_key_unused_for_a_whole_generation_is_dropped():
    cache = BoundedCache(2)
    cache.keep("cold", 1)
    cache.keep("x", 2)
    cache.keep("y", 3)  # generation 2 starts; cold is in the previous one
    cache.keep("z", 4)  # generation 2 is full with y, z ...
    cache.keep("w", 5)  # ... and ends: the previous generation (cold, x) is gone
    assert cache.lookup("cold") is None and cache.lookup("x") is None
    assert cache.lookup("z") == 4


def test_reset_forgets_both_generations():
    cache = BoundedCache(1)
    cache.keep("a", 1)
    cache.keep("b", 2)
    cache.reset()
    assert cache.lookup("a") is None and cache.lookup("b") is None


def test_a_key_is_admitted_the_second_time_it_is_missed():
    cache = BoundedCache(4)
    assert cache.admit("a") is False  # first miss: only its hash is remembered
    assert cache.admit("b") is False
    assert cache.admit("a") is True  # missed again: keep it now
    assert cache.admit("a") is False  # (admitted once: the caller stores it)
    assert cache.entries == {} and cache.rotations == 0  # admit stores no value


def test_keys_that_never_repeat_are_never_admitted_and_memory_stays_bounded():
    cache = BoundedCache(16)
    assert not any(cache.admit(("unique", i)) for i in range(10_000))
    assert len(cache.seen) <= 16
    # a key that comes back within the doorkeeper's span is still admitted among them
    for i in range(5):
        cache.admit(("noise", i))
    cache.admit("back")
    for i in range(5):
        cache.admit(("noise2", i))
    assert cache.admit("back") is True
    cache.reset()
    assert cache.seen == set()
