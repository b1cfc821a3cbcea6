"""Tests of the fault rig's checkers: each anomaly they claim to find, found in a history made
to hold it, and clean histories passing. Run: python3 -m unittest discover -s bench/faults"""

import unittest

from checkers import (
    ALLOWED_G2,
    check_acks,
    check_bank,
    check_list_append,
    check_register,
    linearizable,
    unavailability,
)


def reg(f, key, start, end, v=None, result=None, outcome="ok"):
    return {"f": f, "value": {"key": key, "v": v}, "result": result, "outcome": outcome, "start": start, "end": end}


class Register(unittest.TestCase):
    def test_sequential_history_is_linearizable(self):
        h = [reg("write", "a", 0, 1, v=1), reg("read", "a", 2, 3, result=1), reg("swap", "a", 4, 5, v=2, result=1), reg("read", "a", 6, 7, result=2)]
        self.assertEqual(linearizable(h), (True, None))

    def test_stale_read_after_a_completed_write_is_caught(self):
        h = [reg("write", "a", 0, 1, v=1), reg("write", "a", 2, 3, v=2), reg("read", "a", 4, 5, result=1)]
        ok, pending = linearizable(h)
        self.assertFalse(ok)
        self.assertTrue(pending)
        self.assertEqual(check_register(h)[0]["type"], "nonlinearizable")

    def test_concurrent_read_may_see_either_value(self):
        for seen in (1, 2):
            h = [reg("write", "a", 0, 1, v=1), reg("write", "a", 2, 5, v=2), reg("read", "a", 3, 4, result=seen)]
            self.assertTrue(linearizable(h)[0], seen)

    def test_unknown_write_may_or_may_not_happen(self):
        for seen in (None, 9):
            h = [reg("write", "a", 0, 1, v=9, outcome="info"), reg("read", "a", 5, 6, result=seen)]
            self.assertTrue(linearizable(h)[0])
        # ...but once seen, it cannot be unseen.
        h = [reg("write", "a", 0, 1, v=9, outcome="info"), reg("read", "a", 5, 6, result=9), reg("read", "a", 7, 8, result=None)]
        self.assertFalse(linearizable(h)[0])

    def test_failed_write_must_not_be_seen(self):
        h = [reg("write", "a", 0, 1, v=9, outcome="fail"), reg("read", "a", 5, 6, result=9)]
        self.assertFalse(linearizable(h)[0])

    def test_swap_must_return_the_value_it_replaced(self):
        h = [reg("write", "a", 0, 1, v=1), reg("swap", "a", 2, 3, v=2, result=None)]
        self.assertFalse(linearizable(h)[0])


class Bank(unittest.TestCase):
    def test_wrong_total_is_caught(self):
        ok = {"f": "read", "outcome": "ok", "result": {"a": 5, "b": 5}}
        bad = {"f": "read", "outcome": "ok", "result": {"a": 5, "b": 4}}
        self.assertEqual(check_bank([ok], 10), [])
        self.assertEqual(check_bank([ok, bad], 10)[0]["type"], "wrong-total")


class Acks(unittest.TestCase):
    def test_lost_acknowledged_write_is_caught(self):
        op = {"f": "set", "value": {"key": "k", "v": "1"}, "outcome": "ok"}
        self.assertEqual(check_acks([op], {"n1": {"k": "1"}, "n2": {"k": "1"}}), [])
        lost = check_acks([op], {"n1": {"k": "1"}, "n2": {}})
        self.assertEqual([a["type"] for a in lost], ["lost-write"])

    def test_unknown_write_may_be_absent(self):
        op = {"f": "set", "value": {"key": "k", "v": "1"}, "outcome": "info"}
        self.assertEqual(check_acks([op], {"n1": {}}), [])
        self.assertEqual(check_acks([op], {"n1": {"k": "2"}})[0]["type"], "garbage-read")


def txn(mops, result=None, outcome="ok", start=0, end=1):
    return {"f": "txn", "value": mops, "result": result if result is not None else mops, "outcome": outcome, "start": start, "end": end}


def kinds(anomalies):
    return sorted({a["type"] for a in anomalies})


class ListAppend(unittest.TestCase):
    def test_serial_history_passes(self):
        t1 = txn([["append", "x", 1], ["append", "y", 1]])
        t2 = txn([["r", "x", None], ["append", "x", 2]], [["r", "x", [1]], ["append", "x", 2]])
        t3 = txn([["r", "x", None], ["r", "y", None]], [["r", "x", [1, 2]], ["r", "y", [1]]])
        self.assertEqual(check_list_append([t1, t2, t3], {"x": [[1, 2]], "y": [[1]]}), [])

    def test_aborted_read(self):
        t1 = txn([["append", "x", 1]], outcome="fail")
        t2 = txn([["r", "x", None]], [["r", "x", [1]]])
        self.assertIn("G1a", kinds(check_list_append([t1, t2], {})))

    def test_intermediate_read(self):
        t1 = txn([["append", "x", 1], ["append", "x", 2]])
        t2 = txn([["r", "x", None]], [["r", "x", [1]]])
        self.assertIn("G1b", kinds(check_list_append([t1, t2], {"x": [[1, 2]]})))

    def test_incompatible_orders_and_duplicates(self):
        t1 = txn([["append", "x", 1]])
        t2 = txn([["append", "x", 2]])
        r1 = txn([["r", "x", None]], [["r", "x", [1, 2]]])
        r2 = txn([["r", "x", None]], [["r", "x", [2, 1, 1]]])
        found = kinds(check_list_append([t1, t2, r1, r2], {}))
        self.assertIn("incompatible-order", found)
        self.assertIn("duplicate-elements", found)

    def test_lost_append(self):
        t1 = txn([["append", "x", 1]])
        t2 = txn([["append", "x", 2]])
        self.assertEqual(kinds(check_list_append([t1, t2], {"x": [[2]]})), ["lost-append"])

    def test_internal_inconsistency(self):
        t1 = txn([["append", "x", 1], ["r", "x", None]], [["append", "x", 1], ["r", "x", []]])
        self.assertIn("internal", kinds(check_list_append([t1], {"x": [[1]]})))

    def test_g0_write_cycle(self):
        # x's order says t1 before t2, y's says t2 before t1.
        t1 = txn([["append", "x", 1], ["append", "y", 2]])
        t2 = txn([["append", "x", 2], ["append", "y", 1]])
        found = kinds(check_list_append([t1, t2], {"x": [[1, 2]], "y": [[1, 2]]}))
        self.assertIn("G0", found)

    def test_g1c_circular_information_flow(self):
        # t1 reads t2's append to y, t2 reads t1's append to x.
        t1 = txn([["append", "x", 1], ["r", "y", None]], [["append", "x", 1], ["r", "y", [1]]])
        t2 = txn([["append", "y", 1], ["r", "x", None]], [["append", "y", 1], ["r", "x", [1]]])
        self.assertIn("G1c", kinds(check_list_append([t1, t2], {"x": [[1]], "y": [[1]]})))

    def test_g_single_read_skew(self):
        # t2 appends to x and y; t1 sees t2's y but not its x.
        t2 = txn([["append", "x", 1], ["append", "y", 1]])
        t1 = txn([["r", "x", None], ["r", "y", None]], [["r", "x", []], ["r", "y", [1]]])
        self.assertEqual(kinds(check_list_append([t1, t2], {"x": [[1]], "y": [[1]]})), ["G-single"])

    def test_g2_write_skew(self):
        # Each reads the key the other appends to, and misses the other's append: allowed
        # under snapshot isolation, an anomaly when both WATCHed what they read.
        t1 = txn([["r", "x", None], ["append", "y", 1]], [["r", "x", []], ["append", "y", 1]])
        t2 = txn([["r", "y", None], ["append", "x", 1]], [["r", "y", []], ["append", "x", 1]])
        final = {"x": [[1]], "y": [[1]]}
        self.assertEqual(kinds(check_list_append([t1, t2], final)), [ALLOWED_G2])
        t1["watched"] = True
        self.assertEqual(kinds(check_list_append([t1, t2], final)), [ALLOWED_G2])
        t2["watched"] = True
        self.assertEqual(kinds(check_list_append([t1, t2], final)), ["G2"])

    def test_reading_your_own_appends_is_not_an_anomaly(self):
        t1 = txn([["append", "x", 1], ["r", "x", None], ["append", "x", 2]], [["append", "x", 1], ["r", "x", [1]], ["append", "x", 2]])
        t2 = txn([["r", "x", None], ["append", "x", 3]], [["r", "x", [1, 2]], ["append", "x", 3]])
        t3 = txn([["r", "x", None], ["append", "x", 4], ["r", "x", None], ["append", "x", 5]], [["r", "x", [1, 2, 3]], ["append", "x", 4], ["r", "x", [1, 2, 3, 4]], ["append", "x", 5]])
        self.assertEqual(check_list_append([t1, t2, t3], {"x": [[1, 2, 3, 4, 5]]}), [])

    def test_lost_update(self):
        t1 = txn([["r", "x", None], ["append", "x", 1]], [["r", "x", []], ["append", "x", 1]])
        t2 = txn([["r", "x", None], ["append", "x", 2]], [["r", "x", []], ["append", "x", 2]])
        self.assertIn("lost-update", kinds(check_list_append([t1, t2], {"x": [[1, 2]]})))


class Availability(unittest.TestCase):
    def test_longest_gap_after_each_fault(self):
        ops = [{"write": True, "outcome": "ok", "end": t} for t in (1, 2, 9, 10, 21, 22)]
        faults = [{"what": "kill n1", "start": 3, "end": 5}, {"what": "kill n2", "start": 15, "end": 16}]
        windows = unavailability(ops, faults, 25)
        self.assertEqual([w["longest_no_write_s"] for w in windows], [6, 6])


if __name__ == "__main__":
    unittest.main()
