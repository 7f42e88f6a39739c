"""Task helpers of carewatch.pipeline that do not need Airflow."""

from carewatch import pipeline


def test_as_list_accepts_what_a_mapped_task_group_hands_over():
    one = {"period": "2018-03"}
    assert pipeline.as_list(None) == []  # expanded over no period
    assert pipeline.as_list(one) == [one]  # one period, under the scheduler: the lone result
    assert pipeline.as_list([one, None, one]) == [one, one]  # skipped instances give nothing
    assert pipeline.as_list((r for r in [one])) == [one]  # a lazy XCom sequence
