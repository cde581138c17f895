"""Dataset readers: one parser per format, stream order, clear errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from stream.evaluation.datasets import DatasetError, read_events
from stream.events import Event
from tests.conftest import data_path


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(p, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_rsc15_time_and_file_order(tmp_path: Path) -> None:
    p = write(tmp_path, "x.txt", "SessionId\tItemId\tTime\n1\ta\t10.5\n1\tb\t30.0\n2\tc\t20.0\n")
    assert [e.item_id for e in read_events(p, "rsc15")] == ["a", "c", "b"]
    assert [e.item_id for e in read_events(p, "rsc15", order="file")] == ["a", "b", "c"]
    assert next(iter(read_events(p, "rsc15"))) == Event("1", "a", 10.5)


def test_diginetica_sorts_within_session_and_builds_a_clock(tmp_path: Path) -> None:
    p = write(tmp_path, "v.csv", "session_id;user_id;item_id;timeframe;eventdate\n"
                                 "1;NA;x;5000;2016-01-02\n1;NA;y;1000;2016-01-02\n2;7;z;0;2016-01-01\n")
    ev = list(read_events(p, "diginetica"))
    assert [e.item_id for e in ev] == ["z", "y", "x"]
    assert ev[0].user_id == "7" and ev[1].user_id is None
    assert ev[2].timestamp - ev[1].timestamp == pytest.approx(4.0)


def test_diginetica_purchases_join_their_sessions_views(tmp_path: Path) -> None:
    write(tmp_path, "train-item-views.csv", "session_id;user_id;item_id;timeframe;eventdate\n"
                                            "1;NA;x;5000;2016-01-02\n1;NA;y;1000;2016-01-02\n2;7;z;0;2016-01-01\n")
    write(tmp_path, "train-purchases.csv", "sessionId;userId;timeframe;eventdate;ordernumber;itemId\n"
                                           "1;NA;5000;2016-01-02;9;x\n"  # with its view's timeframe
                                           "2;7;86410000;2016-01-02;8;q\n"  # a day after the start
                                           "3;NA;10;2016-01-01;7;w\n")  # no views: left out
    ev = list(read_events(tmp_path, "diginetica-purchases"))
    assert [(e.session_id, e.item_id, e.event_type) for e in ev] == [
        ("2", "z", "view"), ("1", "y", "view"), ("1", "x", "view"), ("1", "x", "purchase"),
        ("2", "q", "purchase")]
    assert ev[-1].timestamp - ev[0].timestamp == pytest.approx(86_410.0) and ev[-1].user_id == "7"
    views = [e for e in ev if e.event_type == "view"]
    assert views == list(read_events(tmp_path / "train-item-views.csv", "diginetica"))
    assert list(read_events(tmp_path / "train-item-views.csv", "diginetica-purchases")) == ev
    (tmp_path / "train-purchases.csv").unlink()
    with pytest.raises(DatasetError, match="purchases"):
        list(read_events(tmp_path, "diginetica-purchases"))


def test_retailrocket_sessions_cut_at_30_minutes(tmp_path: Path) -> None:
    p = write(tmp_path, "events.csv", "timestamp,visitorid,event,itemid,transactionid\n"
                                      "1000000,v1,view,a,\n1600000,v1,addtocart,a,\n"
                                      "4000000,v1,transaction,a,t1\n1200000,v2,view,b,\n")
    ev = list(read_events(p, "retailrocket"))
    assert [(e.session_id, e.event_type) for e in ev] == [
        ("v1-0", "view"), ("v2-0", "view"), ("v1-0", "cart"), ("v1-1", "purchase")]


def test_online_retail_invoice_is_session_and_skips_cancellations(tmp_path: Path) -> None:
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    write(tmp_path, "online_retail_2011-01.csv.gz", header +
              "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850,UK\n"
              "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527,UK\n"
              "536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85,,UK\n")
    ev = list(read_events(tmp_path, "online-retail"))
    assert [(e.session_id, e.item_id, e.user_id, e.price) for e in ev] == [
        ("536365", "85123A", "17850", 2.55), ("536366", "22633", None, 1.85)]


def test_csv_and_jsonl_with_column_mapping(tmp_path: Path) -> None:
    c = write(tmp_path, "c.csv", "sid,sku,ts,category\ns1,i1,2014-04-07T08:51:09Z,shoes\ns1,i2,1396860670,\n")
    ev = list(read_events(c, "csv", columns={"session_id": "sid", "item_id": "sku", "timestamp": "ts"}))
    assert ev[0] == Event("s1", "i1", 1396860669.0, category="shoes") and ev[1].item_id == "i2"
    j = write(tmp_path, "j.jsonl", '{"session_id": "s", "item_id": "i", "timestamp": 3}\n\n'
                                   '{"session_id": "s", "item_id": "k", "timestamp": 1, "price": 2}\n')
    assert [e.item_id for e in read_events(j, "jsonl")] == ["k", "i"]


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        list(read_events(tmp_path / "nope.txt", "rsc15"))
    bad = write(tmp_path, "b.txt", "a\tb\n1\t2\n")
    with pytest.raises(DatasetError, match="missing column"):
        list(read_events(bad, "rsc15"))
    j = write(tmp_path, "bad.jsonl", '{"session_id": "s", "item_id": "i"}\n')
    with pytest.raises(DatasetError, match="record 1: missing_timestamp"):
        list(read_events(j, "jsonl"))
    with pytest.raises(DatasetError, match="unknown format"):
        list(read_events(j, "parquet"))


def test_real_logs_read_in_place() -> None:
    train = data_path("yoochoose-100k", "yoochoose-clicks-100k_train_full.txt")
    ev = list(read_events(train, "rsc15"))
    assert len(ev) == 70_278 and len({e.session_id for e in ev}) == 17_794
    assert all(a.timestamp <= b.timestamp for a, b in zip(ev, ev[1:]))
    digi = list(read_events(data_path("diginetica", "sample_train-item-views.csv"), "diginetica"))
    assert len({e.session_id for e in digi}) == 2_986
    buys = [e for e in read_events(data_path("diginetica"), "diginetica-purchases") if e.event_type == "purchase"]
    assert len(buys) == 256 and len({e.session_id for e in buys}) == 138  # SOURCE.md: 138 sessions
    dec = list(read_events(data_path("online-retail", "online_retail_2010-12.csv.gz"), "online-retail"))
    assert dec and all(e.event_type == "purchase" for e in dec)
