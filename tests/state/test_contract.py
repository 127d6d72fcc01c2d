"""The state store contract: every backend keeps these promises (SQLite in a file, DynamoDB on moto).

A new backend is added to ``BACKENDS`` and must pass all of it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.state import (
    CREATING,
    LINKED,
    RUNNER_LEASE,
    SKIPPED,
    Baseline,
    CommentLink,
    IntentConflict,
    Lease,
    Link,
    SqliteStateStore,
    StateStore,
    case_lease,
)
from connectors.state.dynamodb import SCHEMA_VERSION as DYNAMO_SCHEMA
from connectors.state.dynamodb import DynamoStateStore
from connectors.state.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA
from tests.dynamo import client, create_table

BACKENDS = ("sqlite", "dynamodb")
CASE, OTHER = "1234567890", "2345678901"
EARLY, LATE = "2026-11-29T10:00:00+00:00", "2026-11-29T11:00:00+00:00"

Opener = Callable[[], StateStore]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Opens another store on the same state, as another process or worker would; the DynamoDB ones
    also check that nothing was read with a Scan."""
    opened: list[StateStore] = []
    operations: list[str] = []
    if backend == "sqlite":
        path = tmp_path / "state.sqlite"

        def make() -> StateStore:
            opened.append(SqliteStateStore(path))
            return opened[-1]
    else:
        endpoint = request.getfixturevalue("dynamo_endpoint")
        table = create_table(endpoint)

        def make() -> StateStore:
            dynamodb = client(endpoint)
            dynamodb.meta.events.register(
                "before-call.dynamodb", lambda model, **_: operations.append(model.name)
            )
            opened.append(DynamoStateStore(dynamodb, table))
            return opened[-1]

    yield make
    for store in opened:
        store.close()
    assert "Scan" not in operations


@pytest.fixture
def store(open_store: Opener) -> StateStore:
    return open_store()


def linked(case_id: str = CASE, target: str = "jira", ticket: str = "10001") -> Link:
    return Link(case_id, target, LINKED, ticket, f"SEC-{ticket}", sir_updated=EARLY)


# links


def test_a_saved_link_reads_back_whole_and_an_unknown_one_is_none(store: StateStore) -> None:
    link = Link(CASE, "jira", LINKED, "10001", "SEC-1", "", EARLY, LATE, LATE)
    store.save_link(link)
    assert store.link(CASE, "jira") == link
    assert store.link(CASE, "servicenow") is None
    assert store.link(OTHER, "jira") is None


def test_links_are_listed_by_target_and_state_in_case_order(store: StateStore) -> None:
    store.save_link(linked(OTHER))
    store.save_link(linked(CASE))
    store.save_link(Link("3456789012", "jira", SKIPPED, sir_updated=EARLY))
    store.save_link(Link("4567890123", "jira", CREATING, intent_at=EARLY))
    store.save_link(linked(CASE, "servicenow", "abc"))
    assert [link.case_id for link in store.links("jira")] == [CASE, OTHER]
    everything = store.links("jira", (LINKED, CREATING, SKIPPED))
    assert [link.case_id for link in everything] == [CASE, OTHER, "3456789012", "4567890123"]
    assert [link.state for link in store.links("jira", (SKIPPED,))] == [SKIPPED]
    assert [link.ticket_id for link in store.links("servicenow")] == ["abc"]


def test_a_link_that_changes_state_moves_between_the_lists(store: StateStore) -> None:
    store.save_link(Link(CASE, "jira", CREATING, intent_at=EARLY))
    store.save_link(linked())
    assert store.links("jira", (CREATING,)) == []
    assert [link.state for link in store.links("jira")] == [LINKED]


def test_a_ticket_leads_back_to_its_case_for_its_target_only(store: StateStore) -> None:
    store.save_link(linked(CASE, "jira", "10001"))
    store.save_link(linked(OTHER, "servicenow", "10001"))
    found = store.link_for_ticket("jira", "10001")
    assert found is not None and found.case_id == CASE
    other = store.link_for_ticket("servicenow", "10001")
    assert other is not None and other.case_id == OTHER
    assert store.link_for_ticket("jira", "99999") is None
    store.save_link(linked(CASE, "jira", "10002"))  # linked to another ticket now
    assert store.link_for_ticket("jira", "10001") is None
    assert store.link_for_ticket("jira", "10002") == store.link(CASE, "jira")


def test_a_create_intent_never_replaces_a_linked_ticket(store: StateStore) -> None:
    store.save_link(Link(CASE, "jira", CREATING, intent_at=EARLY))  # no link yet
    store.save_link(Link(CASE, "jira", CREATING, intent_at=LATE))  # an intent again, after settling
    store.save_link(Link(OTHER, "jira", SKIPPED, sir_updated=EARLY))
    store.save_link(Link(OTHER, "jira", CREATING, intent_at=EARLY))  # a skipped case reopened
    store.save_link(linked(CASE))
    with pytest.raises(IntentConflict, match="SEC-10001"):
        store.save_link(Link(CASE, "jira", CREATING, intent_at=LATE))
    assert store.link(CASE, "jira") == linked(CASE)


def test_a_create_intent_in_a_transaction_is_refused_over_a_linked_ticket_too(store: StateStore) -> None:
    store.save_link(linked(CASE))
    with pytest.raises(IntentConflict), store.transaction():
        store.save_baseline(OTHER, "jira", "title", Baseline("a", "a"))
        store.save_link(Link(CASE, "jira", CREATING, intent_at=LATE))
    assert store.link(CASE, "jira") == linked(CASE)


# baselines, comment links, agent actions


def test_baselines_are_kept_per_case_target_and_field_and_replaced_by_newer(store: StateStore) -> None:
    store.save_baseline(CASE, "jira", "title", Baseline("A", "A"))
    store.save_baseline(CASE, "jira", "status", Baseline("Open", "To Do"))
    store.save_baseline(CASE, "jira", "title", Baseline("B", "B "))
    store.save_baseline(CASE, "servicenow", "title", Baseline("C", "C"))
    store.save_baseline(OTHER, "jira", "title", Baseline("D", "D"))
    expected = {"title": Baseline("B", "B "), "status": Baseline("Open", "To Do")}
    assert store.baselines(CASE, "jira") == expected
    assert store.baselines(CASE, "servicenow") == {"title": Baseline("C", "C")}
    assert store.baselines("3456789012", "jira") == {}


def test_comment_links_keep_their_mirrors_hash_and_deletion(store: StateStore) -> None:
    first = CommentLink(CASE, "jira", "sir", "100001", ["10001", "10002"], "abc")
    second = CommentLink(CASE, "jira", "jira", "10003", ["200001"], "def", mirror_deleted=True)
    empty = CommentLink(CASE, "jira", "inv", "inv-1", [], "")
    for link in (first, second, empty, CommentLink(CASE, "servicenow", "sir", "100001", ["x"], "abc")):
        store.save_comment_link(link)
    found = sorted(store.comment_links(CASE, "jira"), key=lambda link: link.source_id)
    assert found == sorted([first, second, empty], key=lambda link: link.source_id)
    first.mirror_ids = ["10009"]
    first.mirror_deleted = True
    store.save_comment_link(first)
    [again] = [link for link in store.comment_links(CASE, "jira") if link.source_id == "100001"]
    assert again == first
    assert store.comment_links(OTHER, "jira") == []


def test_cases_with_unfinished_agent_actions_are_known_per_target(store: StateStore) -> None:
    store.save_agent_action(CASE, "jira", "inv-1", finished=False)
    store.save_agent_action(CASE, "jira", "inv-2", finished=True)
    store.save_agent_action(OTHER, "servicenow", "inv-3", finished=False)
    assert store.agent_actions(CASE, "jira") == {"inv-1": False, "inv-2": True}
    assert store.cases_with_unfinished_agent_actions("jira") == {CASE}
    assert store.cases_with_unfinished_agent_actions("servicenow") == {OTHER}
    store.save_agent_action(CASE, "jira", "inv-1", finished=True)
    assert store.cases_with_unfinished_agent_actions("jira") == set()
    assert store.agent_actions(CASE, "jira") == {"inv-1": True, "inv-2": True}


def test_the_principal_and_the_cursors_are_kept_per_system_and_target(store: StateStore) -> None:
    assert store.principal("sir") is None and store.cursor("jira", "jira") is None
    store.save_principal("sir", "arn:aws:iam::123456789012:role/sirsync")
    store.save_cursor("jira", "jira", EARLY)
    store.save_cursor("servicenow", "servicenow", LATE)
    store.save_cursor("jira", "jira", LATE)
    assert store.principal("sir") == "arn:aws:iam::123456789012:role/sirsync"
    assert store.principal("jira") is None
    assert store.cursor("jira", "jira") == LATE
    assert store.cursor("servicenow", "servicenow") == LATE
    assert store.cursor("jira", "servicenow") is None


# failures and quarantine


def test_a_failing_case_is_counted_and_quarantined_at_the_limit(store: StateStore) -> None:
    first = store.record_failure(CASE, "jira", "refused", quarantine_after=3, stage="status")
    assert (first.count, first.quarantined, first.stage, first.retriable) == (1, False, "status", False)
    store.record_failure(CASE, "jira", "refused again", quarantine_after=3)
    third = store.record_failure(CASE, "jira", "503", quarantine_after=3, stage="fields", retriable=True)
    assert (third.count, third.quarantined, third.since) == (3, True, first.since)
    assert store.failures() == [third]
    assert store.failures(quarantined_only=True) == [third]
    fourth = store.record_failure(CASE, "jira", "again", quarantine_after=10)
    assert fourth.quarantined  # stays quarantined until released
    at_once = store.record_failure(OTHER, "servicenow", "deleted", quarantine_after=1, stage="ticket")
    assert at_once.quarantined and at_once.retry_command == f"sirsync retry {OTHER}"


def test_failures_are_listed_oldest_first_and_a_cleared_one_is_gone(store: StateStore) -> None:
    store.record_failure(OTHER, "jira", "x", quarantine_after=5)
    store.record_failure(CASE, "jira", "y", quarantine_after=5)
    assert [f.case_id for f in store.failures()] == [OTHER, CASE]
    assert store.failures(quarantined_only=True) == []
    store.clear_failure(OTHER, "jira")
    assert [f.case_id for f in store.failures()] == [CASE]
    again = store.record_failure(OTHER, "jira", "z", quarantine_after=5)
    assert again.count == 1  # counting starts over


def test_release_frees_quarantined_cases_and_makes_them_due_again(store: StateStore) -> None:
    store.save_link(linked(CASE))
    store.save_link(linked(OTHER, "servicenow"))
    store.record_failure(CASE, "jira", "refused", quarantine_after=1)
    store.record_failure(OTHER, "servicenow", "refused", quarantine_after=1)
    store.record_failure("3456789012", "jira", "failing, not quarantined", quarantine_after=5)
    assert store.release(CASE, "servicenow") == 0
    assert store.release(CASE) == 1
    link = store.link(CASE, "jira")
    assert link is not None and link.sir_updated == ""  # looked at next cycle whatever changed
    assert store.release(CASE) == 0
    assert store.release(target="servicenow") == 1
    assert [f.case_id for f in store.failures()] == ["3456789012"]
    store.record_failure(CASE, "jira", "again", quarantine_after=1)
    store.record_failure(OTHER, "jira", "no link at all", quarantine_after=1)
    assert store.release() == 2
    assert store.failures(quarantined_only=True) == []


def test_forgetting_a_link_drops_what_the_case_keeps_for_that_target_only(store: StateStore) -> None:
    for target in ("jira", "servicenow"):
        store.save_link(linked(CASE, target))
        store.save_baseline(CASE, target, "title", Baseline("A", "A"))
        store.save_comment_link(CommentLink(CASE, target, "sir", "100001", ["1"], "h"))
        store.save_agent_action(CASE, target, "inv-1", finished=False)
        store.record_failure(CASE, target, "deleted", quarantine_after=1, stage="ticket-deleted")
    store.record(CASE, "jira", "created", ticket="SEC-1")
    store.save_note(CASE, "jira", "attachments", "sir:1", "copied")
    store.save_note(CASE, "servicenow", "attachments", "sir:1", "copied")
    store.forget_link(CASE, "jira")
    assert store.link(CASE, "jira") is None
    assert store.baselines(CASE, "jira") == {} and store.comment_links(CASE, "jira") == []
    assert store.agent_actions(CASE, "jira") == {}
    assert store.notes(CASE, "jira", "attachments") == {}
    assert store.notes(CASE, "servicenow", "attachments") == {"sir:1": "copied"}
    assert store.cases_with_unfinished_agent_actions("jira") == set()
    assert [f.target for f in store.failures()] == ["servicenow"]
    assert store.link(CASE, "servicenow") is not None
    assert store.baselines(CASE, "servicenow") and store.comment_links(CASE, "servicenow")
    assert [action.action for action in store.actions(CASE)] == ["created"]  # the log keeps its history


def test_notes_are_kept_per_case_target_and_kind_and_removed_by_none(store: StateStore) -> None:
    store.save_note(CASE, "jira", "attachments", "sir:a#1", '{"mirror": "10"}')
    store.save_note(CASE, "jira", "attachments", "jira:2", "refused")
    store.save_note(CASE, "jira", "watchers", "missing:a@example.com", "reported")
    store.save_note(OTHER, "jira", "attachments", "sir:a#1", "other case")
    store.save_note("ticket:10001", "jira", "intake", "missing", "description")
    assert store.notes(CASE, "jira", "attachments") == {"sir:a#1": '{"mirror": "10"}', "jira:2": "refused"}
    assert store.notes(CASE, "jira", "watchers") == {"missing:a@example.com": "reported"}
    assert store.notes(CASE, "servicenow", "attachments") == {}
    assert store.notes("ticket:10001", "jira", "intake") == {"missing": "description"}
    with store.transaction():
        store.save_note(CASE, "jira", "attachments", "jira:2", "copied")
        store.save_note(CASE, "jira", "attachments", "sir:a#1", None)
    assert store.notes(CASE, "jira", "attachments") == {"jira:2": "copied"}
    store.save_note(CASE, "jira", "attachments", "never-there", None)  # removing nothing is no error
    assert store.notes(OTHER, "jira", "attachments") == {"sir:a#1": "other case"}


def test_forgetting_a_link_with_more_items_than_one_transaction_holds(store: StateStore) -> None:
    store.save_link(linked())
    with store.transaction():
        for number in range(150):
            store.save_comment_link(CommentLink(CASE, "jira", "sir", f"{number}", ["1"], "h"))
    assert len(store.comment_links(CASE, "jira")) == 150
    store.forget_link(CASE, "jira")
    assert store.comment_links(CASE, "jira") == [] and store.link(CASE, "jira") is None


# leases


def mine(holder: str, until: str = LATE, pid: int = 1) -> Lease:
    return Lease(holder, "host-a", pid, until)


def test_a_lease_is_taken_when_free_renewed_by_its_holder_and_refused_to_others(store: StateStore) -> None:
    assert store.lease() is None
    assert store.acquire_lease(mine("a"), EARLY) == mine("a")
    assert store.lease() == mine("a")
    assert store.acquire_lease(mine("b"), EARLY) == mine("a")  # held: the holder is returned
    renewed = mine("a", "2026-11-29T12:00:00+00:00")
    assert store.acquire_lease(renewed, LATE) == renewed  # the holder renews, even at its expiry
    store.release_lease("b")  # not the holder: nothing happens
    assert store.lease() == renewed
    store.release_lease("a")
    assert store.lease() is None
    assert store.acquire_lease(mine("b"), EARLY) == mine("b")


def test_an_expired_lease_is_taken_and_take_over_takes_any(store: StateStore) -> None:
    store.acquire_lease(mine("a", EARLY), EARLY)
    assert store.acquire_lease(mine("b"), EARLY) == mine("b")  # expires_at <= now: lapsed
    assert store.acquire_lease(mine("c"), EARLY, take_over=True) == mine("c")
    assert store.lease() == mine("c")


def test_each_case_lease_is_held_apart_from_the_runners(store: StateStore) -> None:
    jira, snow = case_lease(CASE, "jira"), case_lease(CASE, "servicenow")
    assert store.acquire_lease(mine("runner"), EARLY) == mine("runner")
    assert store.acquire_lease(mine("w1"), EARLY, name=jira) == mine("w1")
    assert store.acquire_lease(mine("w2"), EARLY, name=jira) == mine("w1")
    assert store.acquire_lease(mine("w2"), EARLY, name=snow) == mine("w2")
    store.release_lease("w1", jira)
    assert store.lease(jira) is None and store.lease(snow) == mine("w2")
    assert store.lease(RUNNER_LEASE) == mine("runner")


def test_of_holders_racing_for_a_lease_exactly_one_gets_it(open_store: Opener) -> None:
    stores = [open_store() for _ in range(6)]
    for round_ in range(4):
        name = case_lease(f"race-{round_}", "jira")
        start = threading.Barrier(len(stores))
        won: list[str] = []

        def race(
            index: int, name: str = name, start: threading.Barrier = start, won: list[str] = won
        ) -> None:
            holder = f"w{index}"
            start.wait()
            if stores[index].acquire_lease(mine(holder, pid=index), EARLY, name=name).holder == holder:
                won.append(holder)

        threads = [threading.Thread(target=race, args=(index,)) for index in range(len(stores))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1, won
        held = stores[0].lease(name)
        assert held is not None and held.holder == won[0]


# the action log


def test_the_action_log_reads_back_in_order_per_case_and_up_to_a_limit(store: StateStore) -> None:
    for number in range(12):
        store.record(CASE if number % 2 else OTHER, "jira", f"step-{number}", n=number, at={"x": [1]})
    every = list(store.actions())
    assert [action.action for action in every] == [f"step-{number}" for number in range(12)]
    assert every[0].detail == {"n": 0, "at": {"x": [1]}} and every[0].target == "jira"
    assert [action.detail["n"] for action in store.actions(CASE)] == [1, 3, 5, 7, 9, 11]
    assert [action.detail["n"] for action in store.actions(limit=3)] == [9, 10, 11]  # the latest, in order
    assert [action.detail["n"] for action in store.actions(CASE, limit=2)] == [9, 11]
    assert list(store.actions("3456789012")) == []
    assert all(action.at <= later.at for action, later in itertools.pairwise(every))


# transactions, reopening, threads


def test_writes_in_a_transaction_are_recorded_together_or_not_at_all(store: StateStore) -> None:
    with store.transaction():
        store.save_link(linked())
        with store.transaction():  # nested: part of the outer one
            store.save_baseline(CASE, "jira", "title", Baseline("A", "A"))
        store.record(CASE, "jira", "created")
    assert store.link(CASE, "jira") is not None and store.baselines(CASE, "jira")
    with pytest.raises(RuntimeError), store.transaction():
        store.save_link(linked(OTHER))
        store.save_baseline(OTHER, "jira", "title", Baseline("B", "B"))
        store.record(OTHER, "jira", "created")
        raise RuntimeError("crash before the end")
    assert store.link(OTHER, "jira") is None and store.baselines(OTHER, "jira") == {}
    assert list(store.actions(OTHER)) == []


def test_a_transaction_may_write_the_same_item_twice_and_the_last_write_counts(store: StateStore) -> None:
    with store.transaction():
        store.save_baseline(CASE, "jira", "status", Baseline("Open", "To Do"))
        store.save_baseline(CASE, "jira", "status", Baseline("Open", "In Progress"))
    assert store.baselines(CASE, "jira") == {"status": Baseline("Open", "In Progress")}


def test_what_one_store_wrote_another_opened_later_reads(open_store: Opener, backend: str) -> None:
    first = open_store()
    first.save_link(linked())
    first.save_cursor("jira", "jira", LATE)
    first.close()
    second = open_store()
    assert second.link(CASE, "jira") == linked()
    assert second.cursor("jira", "jira") == LATE
    assert second.schema_version() == (SQLITE_SCHEMA if backend == "sqlite" else DYNAMO_SCHEMA)


def test_workers_on_threads_share_one_store_without_losing_a_write(store: StateStore) -> None:
    def work(worker: int) -> None:
        for number in range(5):
            case_id = f"{worker:02d}{number:08d}"
            with store.transaction():
                store.save_link(linked(case_id, ticket=case_id))
                store.save_baseline(case_id, "jira", "title", Baseline(case_id, case_id))
                store.record(case_id, "jira", "created")
            store.record_failure("9999999999", "jira", "shared", quarantine_after=1000)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.links("jira")) == 40
    assert all(store.baselines(link.case_id, "jira") for link in store.links("jira"))
    assert len(list(store.actions(limit=1000))) == 40
    [failure] = store.failures()
    assert failure.count == 40  # every thread's failure counted: none lost to a race


def test_failures_counted_by_separate_workers_at_once_are_all_counted(open_store: Opener) -> None:
    stores = [open_store() for _ in range(4)]

    def work(store: StateStore) -> None:
        for _ in range(5):
            store.record_failure(CASE, "jira", "503", quarantine_after=100, retriable=True)

    threads = [threading.Thread(target=work, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [failure] = stores[0].failures()
    assert failure.count == 20
