"""Search latency over a large library: ``python -m asrd.testing.bench_search [--transcripts N] [--db PATH]``.

Fills a SQLite job store with N finished transcripts (default 10,000; ~25 cues each, a mix of Chinese,
Japanese and English text with word frequencies following Zipf's law, so common terms hit hundreds of
thousands of cues and rare ones a few), then times each query (median and worst of several runs, first page
of 50 hits with the total). A benchmark, not a test: it prints numbers and checks nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from asrd.control.fingerprint import Fingerprint
from asrd.control.jobs_sqlite import SqliteJobStore
from asrd.control.library import Entry, IndexedCue, LibraryQuery, Summary
from asrd.records import SAMPLE_RATE


def _words(text: str) -> list[str]:
    return text.split()


_HAN = _words(
    "我们 今天 公园 会议 语音 识别 时间 问题 工作 朋友 大家 一下 已经 因为 所以 但是 如果 可以 "
    "没有 什么 这个 那个 明天 下午 上午 电话 报告 项目 客户 老师 学生 孩子 医院 天气 东西 吃饭 "
    "睡觉 开车 地铁 北京 上海 广州 深圳 记录 整理 安排 讨论 决定 计划 预算 合同 邮件 文件 照片 "
    "视频 音乐 电影 故事 新闻 手机 电脑 网络 系统"
)
_JA = _words(
    "明日 会議 東京 よろしく お願い します ありがとう ございます 今日 天気 電車 駅 時間 予定 "
    "資料 確認 お疲れ様 です 大丈夫 少し 遅れ ます"
)
_EN = _words(
    "the a to and of I you it that is was we in for on this with have be are not so what but "
    "just like know think meeting park today tomorrow project budget report call email client "
    "team review schedule recognition speech model server backup weekend dinner kids school "
    "doctor traffic coffee okay ok yes"
)
QUERIES = [
    ("latin, common (3+ chars)", "the"), ("latin, two words", "meeting tomorrow"), ("latin, rare", "xylophone"),
    ("latin, 2 chars", "ok"), ("latin, 1 char", "I"),
    ("CJK 2 chars, common", "我们"), ("CJK 2 chars, rare", "合同"), ("CJK 2 chars, absent", "龙虾"),
    ("CJK 1 char", "的"), ("CJK 3+ chars", "语音识别"), ("CJK 3+ chars, rare", "北京上海"),
    ("Japanese 3+ chars", "お願いします"), ("mixed", "会议 meeting"),
    # plans that were slow once: both indexes with no cue holding both, punctuation, many terms
    ("mixed common, no hit", "the 的"), ("mixed common, both hit", "a the"),
    ("mixed 3+ CJK and Latin", "语音识别 meeting"),
    ("latin 3+ and 1 char", "meeting a"), ("punctuation only", "?"), ("CJK punctuation + 1 char", "。的"),
    ("8 Latin terms", "the a to and of I you it"), ("8 CJK terms, no hit", "我们 今天 公园 会议 语音 识别 时间 问题"),
    ("8 long terms, no hit", " ".join(["abcdefghij" * 10] * 8)),
]
# Filters that reject most matches of a common term: the worst case for walking the index newest-first.
FILTERED = [
    ("CJK 2 chars, language=en", "我们", {"language": "en"}),
    ("latin common, one old day", "the", {"since": 0.0, "until": time.time() - 9_000 * 60}),
    ("CJK 1 char, 1 inbox of none", "的", {"inboxes": ("/elsewhere",)}),
    ("mixed, language=en", "the 我们", {"language": "en"}),
    ("mixed both hit, language=fr", "a the", {"language": "fr"}),
]


def _zipf(words: list[str], rng: random.Random, n: int) -> list[str]:
    weights = [1 / (i + 1) for i in range(len(words))]
    return rng.choices(words, weights, k=n)


def _sentence(rng: random.Random) -> tuple[str, str]:
    kind = rng.random()
    if kind < 0.55:
        words = _zipf(_HAN, rng, rng.randint(3, 8))
        return "".join(w + ("的" if rng.random() < 0.2 else "") for w in words), "zh"
    if kind < 0.7:
        return "".join(_zipf(_JA, rng, rng.randint(3, 7))), "ja"
    words = _zipf(_EN, rng, rng.randint(4, 12))
    if rng.random() < 0.002:
        words.append("xylophone")
    return " ".join(words).capitalize(), "en"


def fill(store: SqliteJobStore, transcripts: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    store._db.execute("PRAGMA synchronous = OFF")  # filling only: the timed queries read
    cues_total = 0
    now = time.time()
    for n in range(transcripts):
        path = Path(f"/inbox/memo-{n:05d}.m4a")
        job = store.offer(path, "/inbox", Fingerprint(1, n + 1, 1000 + n, n, f"h{n}"), 0.0)
        assert job is not None
        cues, t, language = [], 0, "zh"
        for i in range(max(1, int(rng.expovariate(1 / 25)))):
            text, language = _sentence(rng)
            start = t + rng.randint(0, SAMPLE_RATE)
            t = start + rng.randint(SAMPLE_RATE, 6 * SAMPLE_RATE)
            cues.append(IndexedCue(i, start, t, text))
        done = now - (transcripts - n) * 60.0
        store.library.put(Entry(Summary(job.id, "/inbox", path.name, language, t, done, ("NEUTRAL",), (),
                                        len(cues)), tuple(cues)))
        cues_total += len(cues)
    return cues_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transcripts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--db", type=Path, help="keep the database here (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "jobs.db"
        if not db.exists():  # an existing --db is measured as it is
            store = SqliteJobStore(db)
            started = time.perf_counter()
            cues = fill(store, args.transcripts)
            print(f"filled {args.transcripts} transcripts, {cues} cues in {time.perf_counter() - started:.1f} s; "
                  f"database {db.stat().st_size / 2**20:.0f} MB")
            store.close()
        reader = SqliteJobStore.open_readonly(db)  # as the dashboard reads: its own read-only connection
        print(f"{'query':<28} {'text':<18} {'hits':>8} {'median ms':>10} {'worst ms':>9}")
        slowest = (0.0, "", "")
        for label, text, kw in [(a, b, {}) for a, b in QUERIES] + FILTERED:
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                page = reader.library.search(LibraryQuery(text=text, limit=50, **kw))  # type: ignore[arg-type]
                times.append((time.perf_counter() - t0) * 1000)
            total = f"{page.total}{'' if page.exact else '+'}"
            median = statistics.median(times)
            slowest = max(slowest, (median, label, text))
            print(f"{label:<28} {text[:18]:<18} {total:>8} {median:>10.1f} {max(times):>9.1f}")
        print(f"slowest query (median): {slowest[1]} {slowest[2][:40]!r} {slowest[0]:.1f} ms")
        for label, query in [("list, newest 50", LibraryQuery()), ("list, language=en", LibraryQuery(language="en"))]:
            t0 = time.perf_counter()
            reader.library.browse(query)
            print(f"{label:<47} {(time.perf_counter() - t0) * 1000:>10.1f}")
        reader.close()


if __name__ == "__main__":
    main()
