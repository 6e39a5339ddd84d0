"""The bench table gives a time and its range in one unit, and memory above zero."""

from minicnn.bench import report


def test_a_time_and_its_range_share_one_unit():
    assert report._ms(0.592, 0.421, 1.52) == "592 ms (421-1520)"
    assert report._ms(0.0045, 0.0031, 0.0217) == "4.5 ms (3.1-21.7)"
    assert report._ms(1.29, 0.85, 2.1) == "1.29 s (0.85-2.10)"
    assert report._ms(0.5) == "500 ms"


def test_the_table_has_no_mixed_units_and_no_negative_memory():
    info = {"date": "2026-01-01 00:00 UTC", "cpu": "CPU", "cores": 2, "python": "3.11", "numpy": "2.0",
            "blas": "openblas 0.3", "threads": 2, "reps": 5, "notes": []}
    row = {"minicnn_s": 0.592, "minicnn_min_s": 0.421, "minicnn_max_s": 1.52, "minicnn_peak_mib": 44.2,
           "minicnn_op_mib": -0.4}
    text = report.table(info, {"vgg_cifar10/forward": row})
    assert "592 ms (421-1520)" in text and "44 (+0)" in text and "+-" not in text
