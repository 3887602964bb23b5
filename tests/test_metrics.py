"""Oracles for retrieval/metrics.py: hand-computed values, invariants and naive loop references."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.benchmark import QueryGroundTruth
from retrieval.metrics import (
    average_precision,
    compute_ap_for_ranking,
    evaluate_ranking,
    gldv2_average_precisions,
    gldv2_mean_average_precision,
    mean_average_precision,
    mean_precision_at_k,
    positions_after_junk,
    recall_at_k,
    revisited_ground_truth,
    score_queries,
)
from tests.conftest import tiny_benchmark


def naive_revisitop_scores(
    ranking: list[int], positives: set[int], junk: set[int], ks: tuple[int, ...]
) -> tuple[float, dict[int, float], dict[int, float]]:
    """AP, P@kq and hit@k of one ranking, walking it entry by entry straight from the definitions."""
    average = 0.0
    rank = 0  # 0-based rank among the non-junk entries seen so far
    found = 0
    seen: set[int] = set()
    found_ranks: list[int] = []  # 1-based
    for database_index in ranking:
        if database_index in junk:
            continue
        if database_index in positives and database_index not in seen:
            precision_before = 1.0 if rank == 0 else found / rank
            found += 1
            precision_after = found / (rank + 1)
            average += (precision_before + precision_after) / 2 / len(positives)
            found_ranks.append(rank + 1)
        seen.add(database_index)
        rank += 1
    precisions = {}
    hits = {}
    for k in ks:
        last = found_ranks[-1] if found == len(positives) else float("inf")
        cutoff = min(last, k)
        precisions[k] = sum(1 for position in found_ranks if position <= cutoff) / cutoff
        hits[k] = 1.0 if found_ranks and found_ranks[0] <= k else 0.0
    return average, precisions, hits


def naive_gldv2_ap(prediction: list[int], solution: set[int], max_predictions: int = 100) -> float:
    """DELF's MeanAveragePrecision for one query, written as a loop."""
    already_predicted: set[int] = set()
    correct = 0
    total = 0.0
    for i, predicted in enumerate(prediction[:max_predictions]):
        if predicted in already_predicted:
            continue
        if predicted in solution:
            correct += 1
            total += correct / (i + 1)
        already_predicted.add(predicted)
    return total / min(len(solution), max_predictions)


# --- average precision, one query -------------------------------------------------------------------------


def test_average_precision_hand_computed() -> None:
    # Positives at 0-based ranks 0 and 2 of 2 positives:
    #   rank 0: (1 + 1/1) / 2 * 1/2 = 1/2
    #   rank 2: (1/2 + 2/3) / 2 * 1/2 = 7/24
    assert average_precision(np.array([0, 2]), 2) == pytest.approx(1 / 2 + 7 / 24)


def test_average_precision_of_perfect_ranking_is_one() -> None:
    for num_positives in (1, 2, 7):
        assert average_precision(np.arange(num_positives), num_positives) == pytest.approx(1.0)


def test_average_precision_counts_missing_positives_in_denominator() -> None:
    # One of 4 positives found, at rank 0: (1 + 1) / 2 * 1/4 = 1/4.
    assert average_precision(np.array([0]), 4) == pytest.approx(0.25)
    assert average_precision(np.array([], dtype=np.int64), 3) == 0.0


@pytest.mark.parametrize(
    ("positions", "num_positives"),
    [(np.array([2, 1]), 2), (np.array([0, 0]), 2), (np.array([-1]), 1), (np.array([0, 1]), 1)],
)
def test_average_precision_rejects_bad_input(positions: np.ndarray, num_positives: int) -> None:
    with pytest.raises(ValueError):
        average_precision(positions, num_positives)


def test_compute_ap_with_junk_shifts_positives() -> None:
    # ranking: n0 j1 p2 j3 p4 -> without junk: n0 p2 p4, positives at ranks 1 and 2:
    #   rank 1: (0/1 + 1/2) / 2 * 1/2 = 1/8
    #   rank 2: (1/2 + 2/3) / 2 * 1/2 = 7/24       total 1/8 + 7/24 = 5/12
    ranking = np.array([0, 1, 2, 3, 4])
    assert positions_after_junk(ranking, [2, 4], [1, 3]).tolist() == [1, 2]
    assert compute_ap_for_ranking(ranking, [2, 4], [1, 3]) == pytest.approx(5 / 12)


def test_junk_anywhere_never_changes_ap() -> None:
    rng = np.random.default_rng(1)
    base = rng.permutation(30)
    positives = base[[1, 4, 9, 20]]
    expected = compute_ap_for_ranking(base, positives)
    for _ in range(20):
        junk = np.arange(100, 100 + rng.integers(1, 6))
        ranking = np.insert(base, rng.integers(0, base.size + 1, size=junk.size), junk)
        assert compute_ap_for_ranking(ranking, positives, junk) == pytest.approx(expected)


def test_compute_ap_without_positives_is_nan() -> None:
    assert np.isnan(compute_ap_for_ranking(np.arange(5), []))


# --- mP@k and the kq rule ---------------------------------------------------------------------------------


def test_precision_at_k_uses_kq_rule() -> None:
    # 2 positives at 1-based ranks 1 and 3 (no junk): kq = min(max(pos), k) = min(3, k).
    #   k=1: kq=1, 1 positive in the top 1 -> 1/1;  k=5: kq=3 -> 2/3;  k=10: kq=3 -> 2/3 (not 2/10).
    ranking = np.array([[7, 0, 8, 1, 2, 3, 4, 5, 6, 9]])
    precisions = mean_precision_at_k(ranking, [np.array([7, 8])], ks=(1, 5, 10))
    assert precisions == pytest.approx({1: 1.0, 5: 2 / 3, 10: 2 / 3})


def test_precision_at_k_kq_rule_after_junk() -> None:
    # ranking: j p n p n ... ; without junk: p n p n ...  -> positives at ranks 1 and 3; k=2: kq=2 -> 1/2.
    ranking = np.array([[9, 0, 1, 2, 3, 4, 5]])
    precisions = mean_precision_at_k(ranking, [np.array([0, 2])], [np.array([9])], ks=(2, 5))
    assert precisions == pytest.approx({2: 1 / 2, 5: 2 / 3})


# --- truncated rankings -----------------------------------------------------------------------------------


def test_truncated_ranking_ap_is_a_lower_bound() -> None:
    # Full ranking n p n p, 2 positives: rank 1: (0 + 1/2)/4 = 1/8; rank 3: (1/3 + 2/4)/4 = 5/24 -> 1/3.
    # Truncated to n p: the second positive is missing and adds nothing -> 1/8.
    full = np.array([[0, 1, 2, 3]])
    positives = [np.array([1, 3])]
    assert mean_average_precision(full, positives) == pytest.approx(1 / 3)
    assert mean_average_precision(full[:, :2], positives) == pytest.approx(1 / 8)
    # Every positive inside the truncated ranking: exactly the full-ranking AP.
    early = [np.array([0, 1])]
    assert mean_average_precision(full[:, :2], early) == pytest.approx(mean_average_precision(full, early))


def test_truncated_ranking_precision_is_exact_up_to_its_length() -> None:
    # Full: p n n q -> kq = min(4, k). Truncated to p n: q missing, taken as ranked past the end.
    full = np.array([[0, 1, 2, 3]])
    positives = [np.array([0, 3])]
    truncated = full[:, :2]
    # k <= 2 (the truncated length): identical.
    assert mean_precision_at_k(truncated, positives, ks=(1, 2)) == mean_precision_at_k(
        full, positives, ks=(1, 2)
    )
    # k = 5 > 2: full gives kq = 4 -> 2/4, truncated takes kq = 5 -> 1/5 (a lower bound).
    assert mean_precision_at_k(full, positives, ks=(5,))[5] == pytest.approx(2 / 4)
    assert mean_precision_at_k(truncated, positives, ks=(5,))[5] == pytest.approx(1 / 5)


def test_no_positive_found_gives_zero_not_nan() -> None:
    scores = score_queries(np.array([[0, 1, 2]]), [np.array([5])], ks=(1, 5))
    assert scores.average_precision.tolist() == [0.0]
    assert scores.precision_at[5].tolist() == [0.0]
    assert scores.hit_at[1].tolist() == [0.0]


# --- vectorised scores against the naive reference --------------------------------------------------------


def test_vectorised_scores_match_naive_reference_on_random_rankings() -> None:
    rng = np.random.default_rng(0)
    num_queries, num_database = 60, 40
    ks = (1, 3, 5, 10, 40)
    full = np.stack([rng.permutation(num_database) for _ in range(num_queries)])
    positives, junk = [], []
    for _ in range(num_queries):
        chosen = rng.permutation(num_database)
        num_positives, num_junk = rng.integers(0, 8), rng.integers(0, 6)
        positives.append(chosen[:num_positives])
        junk.append(chosen[num_positives : num_positives + num_junk])
    truncated = full[:, :12].copy()
    with_repeats = full[:, :25].copy()
    with_repeats[:, 5:10] = with_repeats[:, :5]  # copies of earlier entries (positives and junk included)
    with_repeats[:, -3:] = -1  # faiss padding
    for ranking in (full, truncated, with_repeats):
        scores = score_queries(ranking, positives, junk, ks=ks)
        for query in range(num_queries):
            if positives[query].size == 0:
                assert np.isnan(scores.average_precision[query])
                continue
            expected_ap, expected_precisions, expected_hits = naive_revisitop_scores(
                ranking[query].tolist(), set(positives[query].tolist()), set(junk[query].tolist()), ks
            )
            assert scores.average_precision[query] == pytest.approx(expected_ap)
            assert compute_ap_for_ranking(ranking[query], positives[query], junk[query]) == pytest.approx(
                expected_ap
            )
            for k in ks:
                assert scores.precision_at[k][query] == pytest.approx(expected_precisions[k])
                assert scores.hit_at[k][query] == expected_hits[k]


def test_queries_without_positives_are_excluded_from_means() -> None:
    # Query 0: positive first -> AP 1. Query 1: no positives -> left out, not counted as 0.
    ranking = np.array([[0, 1], [0, 1]])
    positives = [np.array([0]), np.array([], dtype=np.int64)]
    assert mean_average_precision(ranking, positives) == pytest.approx(1.0)
    assert mean_precision_at_k(ranking, positives, ks=(1,)) == {1: pytest.approx(1.0)}
    assert np.isnan(mean_average_precision(ranking[1:], positives[1:]))
    assert np.isnan(mean_average_precision(np.empty((0, 3), dtype=np.int64), []))


def test_recall_at_k_is_fraction_of_queries_with_a_positive_in_top_k() -> None:
    # Query 0: first positive at rank 1 (0-based 0). Query 1: at 1-based rank 3, after a junk entry that does
    # not count -> 1-based rank 2 without junk.
    ranking = np.array([[4, 1, 2, 3], [1, 9, 2, 4]])
    positives = [np.array([4]), np.array([4])]
    junk = [np.array([], dtype=np.int64), np.array([9])]
    assert recall_at_k(ranking, positives, junk, ks=(1, 2, 3)) == pytest.approx({1: 0.5, 2: 0.5, 3: 1.0})


def test_positive_that_is_also_junk_is_refused() -> None:
    with pytest.raises(ValueError, match="both a positive and junk"):
        score_queries(np.array([[0, 1]]), [np.array([1])], [np.array([1])])


def test_ranking_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="2-D integer"):
        mean_average_precision(np.array([0, 1]), [np.array([0])])
    with pytest.raises(ValueError, match="positive sets"):
        mean_average_precision(np.array([[0, 1]]), [np.array([0]), np.array([1])])
    with pytest.raises(ValueError, match="integer"):
        mean_average_precision(np.array([[0, 1]]), [np.array([0.5])])


# --- GLDv2 mAP@100 ----------------------------------------------------------------------------------------


def test_gldv2_ap_hand_computed_with_duplicates() -> None:
    # Solution {1, 2, 3}; prediction x 1 1 2 y:
    #   i=2: 1 correct -> 1/2;  i=3: duplicate of 1, skipped but it keeps its rank;  i=4: 2 correct -> 2/4.
    #   AP = (1/2 + 2/4) / min(3, 100) = 1/3.
    ranking = np.array([[7, 1, 1, 2, 8]])
    assert gldv2_average_precisions(ranking, [np.array([1, 2, 3])]).tolist() == pytest.approx([1 / 3])


def test_gldv2_ap_with_more_than_100_positives() -> None:
    solution = np.arange(150)
    # All 100 predictions correct: sum of i/i = 100, divided by min(150, 100) = 100 -> 1.
    assert gldv2_average_precisions(np.arange(100)[None], [solution]) == pytest.approx([1.0])
    # 50 correct first, then 50 wrong: 50 / 100 = 0.5. Predictions past 100 are never read.
    ranking = np.concatenate([np.arange(50), np.arange(1000, 1050), np.arange(50, 100)])[None]
    assert gldv2_average_precisions(ranking, [solution]) == pytest.approx([0.5])


def test_gldv2_mean_skips_queries_without_ground_truth() -> None:
    ranking = np.array([[1, 2], [1, 2], [3, 4]])
    positives = [np.array([1]), np.array([], dtype=np.int64), np.array([4])]
    # APs: 1/1 = 1; excluded; 1/2 (found at i=2, 1/2 / min(1, 100)) -> mean 3/4.
    assert gldv2_mean_average_precision(ranking, positives) == pytest.approx(0.75)


def test_gldv2_matches_naive_reference() -> None:
    rng = np.random.default_rng(3)
    num_queries = 40
    ranking = rng.integers(0, 300, size=(num_queries, 130))  # repeats included, more than 100 columns
    positives = [rng.choice(300, size=rng.integers(1, 160), replace=False) for _ in range(num_queries)]
    scores = gldv2_average_precisions(ranking, positives)
    for query in range(num_queries):
        expected = naive_gldv2_ap(ranking[query].tolist(), set(positives[query].tolist()))
        assert scores[query] == pytest.approx(expected)


# --- evaluate_ranking on benchmarks ----------------------------------------------------------------------


def test_revisited_easy_medium_hard_on_crafted_gnd() -> None:
    truth = QueryGroundTruth(easy=np.array([0, 1]), hard=np.array([2]), junk=np.array([3]))
    benchmark = tiny_benchmark([truth], num_database=8, protocol="revisited")
    ranking = np.array([[3, 2, 4, 0, 5, 1, 6, 7]])
    results = evaluate_ranking(ranking, benchmark)
    # Easy: positives {0, 1}, ignore {3, 2} -> 4 0 5 1 6 7, positives at 0-based ranks 1 and 3:
    #   AP = (0 + 1/2)/4 + (1/3 + 2/4)/4 = 1/8 + 5/24 = 1/3;  kq = min(4, k): P@1 = 0/1, P@5 = P@10 = 2/4.
    assert results["easy/mAP"] == pytest.approx(1 / 3)
    assert [results[f"easy/mP@{k}"] for k in (1, 5, 10)] == pytest.approx([0.0, 0.5, 0.5])
    # Medium: positives {0, 1, 2}, ignore {3} -> 2 4 0 5 1 6 7, positives at ranks 0, 2, 4:
    #   AP = (1 + 1)/6 + (1/2 + 2/3)/6 + (2/4 + 3/5)/6 = 1/3 + 7/36 + 11/60 = 32/45;
    #   kq = min(5, k): P@1 = 1, P@5 = P@10 = 3/5.
    assert results["medium/mAP"] == pytest.approx(32 / 45)
    assert [results[f"medium/mP@{k}"] for k in (1, 5, 10)] == pytest.approx([1.0, 0.6, 0.6])
    # Hard: positives {2}, ignore {3, 0, 1} -> 2 4 5 6 7: AP = 1, kq = 1 -> P@k = 1.
    assert results["hard/mAP"] == pytest.approx(1.0)
    assert [results[f"hard/mP@{k}"] for k in (1, 5, 10)] == pytest.approx([1.0, 1.0, 1.0])
    assert set(results) == {
        f"{setting}/{metric}"
        for setting in ("easy", "medium", "hard")
        for metric in ("mAP", "mP@1", "mP@5", "mP@10")
    }


def test_revisited_settings_split_the_lists() -> None:
    truth = QueryGroundTruth(easy=np.array([0, 1]), hard=np.array([2]), junk=np.array([3]))
    benchmark = tiny_benchmark([truth], num_database=4, protocol="revisited")
    expected = {"easy": ([0, 1], [2, 3]), "medium": ([0, 1, 2], [3]), "hard": ([2], [0, 1, 3])}
    for setting, (positives, junk) in expected.items():
        got_positives, got_junk = revisited_ground_truth(benchmark, setting)  # type: ignore[arg-type]
        assert got_positives[0].tolist() == positives
        assert got_junk[0].tolist() == junk


def test_revisited_hard_excludes_queries_without_hard_positives() -> None:
    with_hard = QueryGroundTruth(easy=np.array([0]), hard=np.array([1]))
    without_hard = QueryGroundTruth(easy=np.array([0]))
    benchmark = tiny_benchmark([with_hard, without_hard], num_database=3, protocol="revisited")
    results = evaluate_ranking(np.array([[1, 0, 2], [2, 1, 0]]), benchmark)
    # Hard: only query 0 counts; its hard positive is first (easy ignored) -> 1.
    assert results["hard/mAP"] == pytest.approx(1.0)


def test_gldv2_keys_and_public_private_split() -> None:
    ground_truth = [
        QueryGroundTruth(easy=np.array([0]), usage="Public"),
        QueryGroundTruth(easy=np.array([1]), usage="Private"),
        QueryGroundTruth(easy=np.array([2, 3]), usage="Private"),
    ]
    benchmark = tiny_benchmark(ground_truth, num_database=5, protocol="gldv2")
    ranking = np.array([[0, 1, 2], [0, 1, 2], [4, 4, 4]])
    results = evaluate_ranking(ranking, benchmark)
    # APs: 1 (public); 1/2 (private); 0 (private, nothing found) -> public 1, private 1/4, all 1/2.
    assert results == pytest.approx(
        {"mAP@100": 0.5, "mAP@100/public": 1.0, "mAP@100/private": 0.25, "recall@100": 2 / 3}
    )


def test_plain_leave_one_out_keys_and_values() -> None:
    # Two landmarks {0, 1, 2} and {3, 4}; each image is a query, itself junk.
    groups = [[0, 1, 2], [3, 4]]
    ground_truth = [
        QueryGroundTruth(
            easy=np.array([other for other in group if other != member]), junk=np.array([member])
        )
        for group in groups
        for member in group
    ]
    benchmark = tiny_benchmark(ground_truth, num_database=5, protocol="plain")
    # Perfect rankings: the query first (junk), then its landmark, then the rest.
    ranking = np.array([[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [2, 1, 0, 4, 3], [3, 4, 0, 1, 2], [4, 3, 2, 1, 0]])
    results = evaluate_ranking(ranking, benchmark)
    assert set(results) == {"mAP", "mP@1", "mP@5", "mP@10", "recall@1", "recall@10"}
    # mP@k is standard precision at k: with 2 or 1 positives, a perfect top 5 holds 2/5 or 1/5 of them.
    expected = {key: 1.0 for key in results} | {
        "mP@5": (3 * 2 / 5 + 2 * 1 / 5) / 5,
        "mP@10": (3 * 2 / 10 + 2 * 1 / 10) / 5,
    }
    assert results == pytest.approx(expected)
    # Last query (image 4, positive 3): 4 2 3 1 0 -> without the query 2 3 1 0, its one positive at 0-based
    # rank 1: AP = (0/1 + 1/2) / 2 = 1/4, and no positive at rank 1 for recall@1.
    ranking[4] = [4, 2, 3, 1, 0]
    assert evaluate_ranking(ranking, benchmark)["mAP"] == pytest.approx((4 * 1.0 + 0.25) / 5)
    assert evaluate_ranking(ranking, benchmark)["recall@1"] == pytest.approx(4 / 5)


def test_evaluate_ranking_checks_ranking_against_benchmark() -> None:
    benchmark = tiny_benchmark([QueryGroundTruth(easy=np.array([0]))], num_database=2, protocol="plain")
    with pytest.raises(ValueError, match="rows"):
        evaluate_ranking(np.array([[0, 1], [1, 0]]), benchmark)
    with pytest.raises(ValueError, match="must lie in"):
        evaluate_ranking(np.array([[0, 2]]), benchmark)
