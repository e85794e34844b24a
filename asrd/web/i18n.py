"""English and Chinese strings for the dashboard: a message catalogue keyed by the English text, chosen
from the browser's Accept-Language. No gettext build step: a missing translation shows the English."""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("en", "zh")

ZH: dict[str, str] = {
    # navigation
    "Now": "当前", "Where is my file": "我的文件在哪", "Problems": "问题", "Model & power": "模型与电源",
    "Inboxes": "收件夹", "System": "系统", "Not queued": "未入队", "Library": "转写库", "Upload": "上传",
    # Re-run and compare (compare.html)
    "Compare": "对比", "Re-run with other settings": "用其他设置重新转写", "Re-run": "重新转写",
    "as before": "同前", "Language": "语言", "Model": "模型", "Hotwords": "热词", "Run": "运行",
    "Settings": "设置", "State": "状态", "first": "首次", "re-run": "重新转写", "older content": "内容已变",
    "in the sidecars": "当前字幕文件", "(edited since)": "（之后被编辑过）", "Use this one": "采用这个",
    "comma-separated; empty: as before": "逗号分隔；留空：同前", "time": "时间", "transcript": "转写",
    "details": "详情", "a file is re-run once it is done": "文件完成后才能重新转写",
    "A re-run never changes the sidecars: choose the result you want below.":
        "重新转写不会改动字幕文件：请在下面选择要采用的结果。",
    "Edited since asrd wrote them": "asrd 写入后被编辑过",
    "Choosing a run replaces them only if you confirm that your edits are discarded.":
        "只有在你确认放弃编辑后，选择某次运行才会替换它们。",
    "re-runs on": "重新转写使用",  # Model & power: a re-run worker's model
    "of": "/", "lines differ; changes are marked against the run in the sidecars.":
        "行不同；差异以当前字幕文件所用的运行为准标出。",
    # Now
    "transcribing": "转写中", "queued": "排队中", "settling": "等待写完", "done": "已完成", "problems": "问题",
    "model": "模型", "Transcribing": "正在转写", "Queued": "队列", "Settling": "等待写完",
    "Nothing right now.": "当前没有任务。", "The queue is empty.": "队列为空。",
    "starts in about": "预计开始于", "start time not known yet: no file finished since the start":
        "预计开始时间未知：启动后还没有完成的文件",
    "size still changing": "大小仍在变化", "quiet for the settle time": "等待静止时间",
    "empty placeholder: waits to be written": "空占位文件：等待写入", "left": "剩余",
    "measured speed": "实测速度", "audio seconds per second": "秒音频/秒",
    # Where is my file / not queued
    "Ignored files": "被忽略的文件", "Files without a job": "没有任务的文件", "Look now": "立即检查",
    "Queue now": "立即排队", "rule": "规则", "seen": "发现于", "inbox": "收件夹", "file": "文件",
    "size": "大小", "No file was ignored since the start.": "启动以来没有被忽略的文件。",
    "No file is settling.": "没有等待写完的文件。",
    "Never checked. The check runs in the daemon, a few hundred files per turn.":
        "尚未检查。检查在守护进程中分批运行。",
    "Checking the inboxes...": "正在检查收件夹……",
    "Every file in the inboxes has a job.": "收件夹中的每个文件都有任务。",
    "checked": "已检查", "files looked at": "个文件已检查", "and": "以及", "more": "更多",
    # Inboxes
    "path": "路径", "watch": "监视", "watcher": "监视器", "healthy": "正常", "down: rescans only": "故障：仅定期扫描",
    "last rescan": "上次扫描", "next rescan": "下次扫描", "settle time": "静止时间", "language": "语言",
    "hotwords": "热词", "formats": "格式", "free disk": "可用空间", "Pause": "暂停", "Resume": "恢复",
    "paused": "已暂停", "running": "运行中", "rescans off": "不定期扫描", "none": "无",
    "Pausing an inbox keeps its files queued; files in flight finish. The pause survives a restart.":
        "暂停收件夹后其文件保持排队，正在处理的文件会完成。暂停在重启后仍然有效。",
    # System
    "Version": "版本", "Daemon": "守护进程", "State directory": "状态目录", "Job database": "任务数据库",
    "uptime": "运行时间", "Recent log lines": "最近日志", "Effective configuration": "生效配置",
    "Copy diagnostics": "复制诊断信息", "Copied.": "已复制。", "key": "键", "value": "值", "source": "来源",
    "environment": "环境变量", "config file": "配置文件", "default": "默认值",
    "Read-only: change the config file or the environment, then reload (SIGHUP).":
        "只读：修改配置文件或环境变量后重新加载（SIGHUP）。",
    "No log lines yet.": "还没有日志。",
}
CATALOGUES = {"zh": ZH}


def choose(accept_language: str | None) -> str:
    """The best of LANGUAGES for an Accept-Language header (q-values respected), English by default."""
    best, best_q = "en", -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        lang = tag.strip().lower().split("-")[0]
        if lang in LANGUAGES and q > best_q:
            best, best_q = lang, q
    return best


def translator(lang: str) -> Callable[[str], str]:
    table = CATALOGUES.get(lang, {})
    return lambda text: table.get(text, text)
