"""Race scenarios on each build kind: on the GIL build they are the control, on the
free-threaded build the evidence that the patched interpreter gives no wrong value, no
crash and no hang whatever the interleaving (issue 18). Each runs in its own process for
SECONDS; `./pp bench interpreter_races.py --minutes M` runs them for longer."""
import json
import pathlib
import signal

import pytest

RUN = pathlib.Path(__file__).resolve().parent / "run.py"
SECONDS = 2.0

# The specialized forms a scenario's hot code must hold before its threads start, in the
# free-threaded build: proof that the race ran through the specialized paths.
EXPECTED_FORMS = {
    "attr_add_delete": {"LOAD_ATTR_INSTANCE_VALUE"},
    "slot_attrs": {"LOAD_ATTR_SLOT", "STORE_ATTR_SLOT"},
    "class_replace": {"LOAD_ATTR_METHOD_WITH_VALUES", "LOAD_ATTR_CLASS", "LOAD_ATTR_PROPERTY",
                      "LOAD_ATTR_NONDESCRIPTOR_WITH_VALUES"},
    "class_assign": {"LOAD_ATTR_METHOD_WITH_VALUES", "LOAD_ATTR_INSTANCE_VALUE"},
    "globals_resize": {"LOAD_GLOBAL_MODULE", "LOAD_GLOBAL_BUILTIN", "CALL_LEN"},
    "globals_rebound": {"LOAD_GLOBAL_MODULE", "CALL_ISINSTANCE"},
    "module_attrs": {"LOAD_ATTR_MODULE"},
    "list_mutation": {"FOR_ITER_LIST", "BINARY_SUBSCR_LIST_INT", "STORE_SUBSCR_LIST_INT",
                      "UNPACK_SEQUENCE_LIST", "CALL_LIST_APPEND", "CONTAINS_OP_DICT"},
    "code_replace": {"CALL_PY_EXACT_ARGS", "CALL_PY_GENERAL"},
    "first_specialization": {"STORE_ATTR_INSTANCE_VALUE", "LOAD_ATTR_INSTANCE_VALUE",
                             "LOAD_GLOBAL_MODULE"},
    "inline_dict_replace": {"LOAD_ATTR_INSTANCE_VALUE"},
    "class_attr_swaps": {"LOAD_ATTR_INSTANCE_VALUE"},
    "init_swap": {"CALL_ALLOC_AND_ENTER_INIT"},
    "globals_rebound_boxes": {"LOAD_GLOBAL_MODULE", "LOAD_GLOBAL_BUILTIN"},
    "module_first_specialization": set(),   # each read compiles fresh code
    "copied_globals": {"LOAD_GLOBAL_MODULE", "LOAD_GLOBAL_BUILTIN"},
    "shared_iterator": {"FOR_ITER_LIST", "FOR_ITER_TUPLE", "FOR_ITER_RANGE"},
    "iterator_end": {"FOR_ITER_TUPLE", "FOR_ITER_LIST"},
    "iterator_end_generic": {"FOR_ITER_TUPLE"},
    "list_dict_items": {"FOR_ITER_LIST", "BINARY_SUBSCR_LIST_INT", "STORE_SUBSCR_LIST_INT",
                        "UNPACK_SEQUENCE_LIST", "CALL_LIST_APPEND", "BINARY_SUBSCR_DICT",
                        "STORE_SUBSCR_DICT", "CONTAINS_OP_DICT"},
    "tracing_toggle": set(),                 # each read compiles fresh code
    "fork_loop": set(),                      # likewise
}


@pytest.fixture(scope="module")
def available(pp):
    r = pp.run(RUN, "--list", timeout=60)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_every_scenario_is_listed_here(pp, available):
    assert available <= set(EXPECTED_FORMS), available - set(EXPECTED_FORMS)


@pytest.mark.parametrize("scenario", sorted(EXPECTED_FORMS))
def test_race(pp, available, scenario):
    if scenario not in available:
        pytest.skip(f"{scenario} needs an interpreter this build's {pp.version} is not")
    r = pp.run(RUN, scenario, SECONDS, timeout=120)
    if r.returncode < 0:
        pytest.fail(f"killed by {signal.Signals(-r.returncode).name}: {r.stderr[-3000:]}")
    assert r.stdout.strip(), f"no result (exit {r.returncode}): {r.stderr[-2000:]}"
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0, result
    assert result["reads"] > 0 and not result["bad"] and not result["errors"], result
    if pp.kind == "free-threaded":
        assert result["gil"] is False
        missing = EXPECTED_FORMS[scenario] - set(result["specialized_after_warmup"])
        assert not missing, f"not specialized before the threads started: {missing}"
