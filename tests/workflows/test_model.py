"""Pure parts: graph compilation, the scheduling plan, cycles, layers, dict round trip."""

from __future__ import annotations

from jobfleet.workflows import Workflow, array, from_dict, task
from jobfleet.workflows.definition import to_dict
from jobfleet.workflows.model import find_cycle
from jobfleet.workflows.state import compile_graph, layers, plan

F = "tests.workflows.jobs.noop"


def test_plan_gates_pending_counts_and_ready_children() -> None:
    wf = Workflow("w", [
        task("a", F),
        array("seq", F, size=3, depends="SEQUENTIAL", depends_on=["a"]),
        array("src", F, size=3),
        array("n2n", F, size=3, depends="N_TO_N", depends_on=["src", "a"]),
    ])
    nodes = compile_graph(wf)
    assert nodes[0].down_all == (1, 3) and nodes[2].down_n2n == (3,)
    assert nodes[3].n2n_parents == (2,) and nodes[3].all_parents == (0,)
    a, seq, src, n2n = plan(nodes, {})
    assert (a.gate, a.ready) == (0, [0])
    assert (seq.gate, seq.pending, seq.ready) == (1, {0: 0, 1: 1, 2: 1}, [])
    assert (src.gate, src.ready) == (0, [0, 1, 2])
    assert (n2n.gate, n2n.pending, n2n.ready) == (1, {0: 1, 1: 1, 2: 1}, [])
    # after a retry: a and src[1] and seq[0] succeeded
    a, seq, src, n2n = plan(nodes, {0: {0}, 1: {0}, 2: {1}})
    assert a.ready == [] and seq.ready == [1] and seq.pending == {1: 0, 2: 1}
    assert src.ready == [0, 2] and n2n.gate == 0 and n2n.ready == [1]
    assert layers(nodes) == [0, 1, 0, 1]


def test_cycle_is_found_and_named() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}) == ["a", "b", "c"]
    assert find_cycle({"a": [], "b": ["a"]}) is None


def test_dict_form_round_trips() -> None:
    wf = Workflow("w", [task("a", F, args=[1], retry=2), array("b", F, size=4, depends_on=["a"], max_failures=1)],
                  tenant="t1", on_end="tests.workflows.jobs.on_end")
    again = from_dict(to_dict(wf))
    assert to_dict(again) == to_dict(wf)
    assert again.nodes[1].array is not None and again.nodes[1].max_failures == 1 and again.tenant == "t1"
