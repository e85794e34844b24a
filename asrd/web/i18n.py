"""English and Chinese strings for the dashboard: a message catalogue keyed by the English text, chosen
from the browser's Accept-Language. No gettext build step: a missing translation shows the English."""

from __future__ import annotations

from typing import Protocol

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
    "checked {when}: {n} files looked at.": "{when}检查：查看了 {n} 个文件。", "and {n} more.": "还有 {n} 个。",
    "lists every file with a job; this page shows the ones without: settling, ignored, or missed.":
        "列出每个有任务的文件；本页列出没有任务的：等待写完、被忽略或遗漏的。",
    "A file whose transcript could not be written because a file of yours has the sidecar's name is not ignored: "
    "it is a problem with that reason.":
        "因为你的文件占用了附属文件的名字而无法写出转写的文件不算被忽略：它是一个带有该原因的问题。",
    "Not in this list? See": "不在列表中？请看", "files that are settling, ignored or have no job":
        "等待写完、被忽略或没有任务的文件",
    "part of the file name": "文件名的一部分", "file name": "文件名", "state": "状态", "any state": "任何状态",
    "problem": "问题", "reason contains": "原因包含", "reason": "原因", "files with alerts": "有关键词提醒的文件",
    "Find": "查找", "File": "文件", "Inbox": "收件夹", "Changed": "更改于", "Retry": "重试",
    "Cancel": "取消", "Cancel {name}?": "取消 {name}？", "Forget": "忘记", "No file matches.": "没有匹配的文件。",
    "newer": "较新", "older": "较旧", "page {n} of {m} · {total} file(s)": "第 {n} / {m} 页 · 共 {total} 个文件",
    "page {n} of {m}": "第 {n} / {m} 页", "attempt {n}": "第 {n} 次尝试", "next try {when}": "下次尝试{when}",
    # file
    "Path": "路径", "Size": "大小", "Seen": "发现于", "Sidecars": "附属文件", "none yet": "尚无",
    "open the transcript": "打开转写", "Listen": "收听", "{n} s so far": "已处理 {n} 秒",
    "batched with {n} other files": "与另外 {n} 个文件同批", "Not found": "未找到",
    # states and phases
    "failed": "失败", "quarantined": "已隔离", "loaded": "已加载", "loading": "加载中", "downloading": "下载中",
    "idle": "空闲", "busy": "忙碌", "off": "关闭", "on": "开启", "error": "错误", "draining": "正在收尾",
    "reloading": "正在重新加载", "native": "系统通知", "poll": "轮询", "not watching": "未监视", "inotify": "inotify",
    # Now
    "on {device}": "（{device}）", "Paused: no new file starts.": "已暂停：不会开始新文件。",
    "Daemon {phase}.": "守护进程{phase}。", "Model error:": "模型错误：", "length not known yet": "长度未知",
    "{done} of {total} s": "{done} / {total} 秒", "{n} files batched together.": "{n} 个文件同批处理。",
    "The model unloads {when} unless work arrives.": "若没有新任务，模型将于{when}卸载。",
    "waits until {when}": "等到{when}", "Updated {when}.": "更新于{when}。",
    # time
    "{span} ago": "{span}前", "in {span}": "{span}后", "{n} s": "{n} 秒", "{n} min": "{n} 分钟",
    "{h} h {m} min": "{h} 小时 {m} 分钟", "{n} d": "{n} 天",
    # Problems
    "By reason": "按原因", "Reason": "原因", "Files": "文件", "Latest": "最近",
    "(no reason recorded)": "（未记录原因）",
    "Queue every failed, quarantined and paused file again?": "把所有失败、已隔离和暂停的文件重新排队？",
    "Retry all": "全部重试", "show every reason": "显示所有原因",
    "No problems: nothing failed, quarantined or paused.": "没有问题：没有失败、隔离或暂停的文件。",
    # Model & power
    "Worker": "工作进程", "Device": "设备", "Memory held": "占用内存", "worker": "工作进程",
    "none: no worker": "无：没有工作进程", "daemon": "守护进程", "Last cold start": "上次冷启动", "not yet": "尚未",
    "Idle unload": "空闲卸载",
    "when idle for as long as a cold start costs in energy": "空闲时间达到一次冷启动的能耗时",
    "never": "从不", "after {span} with nothing to do": "无事可做 {span}后", "New files": "新文件",
    "start as they arrive": "到达即开始", "Workers": "工作进程", "Files in flight": "处理中的文件", "Crashes": "崩溃",
    "re-runs on {model}": "重新转写使用 {model}",
    "Unload now": "立即卸载", "Warm up": "预热", "Resume all": "全部恢复", "Pause all": "全部暂停",
    "Unloading ends the model's worker process: all of its memory (GPU memory included) goes back. "
    "The next file, or \"Warm up\", starts it again.":
        "卸载会结束模型的工作进程：它的全部内存（包括显存）都会释放。下一个文件或“预热”会重新启动它。",
    # Library and viewer
    "words in any transcript, any language": "任何转写中的词，任何语言", "search text": "搜索文字", "Search": "搜索",
    "Filters": "筛选", "any": "任意", "From": "从", "To": "到", "Min minutes": "最短（分钟）",
    "Max minutes": "最长（分钟）", "Emotion": "情绪", "Event": "事件", "1 cue found": "找到 1 条字幕",
    "{n} cues found": "找到 {n} 条字幕", "{n}+ cues found": "找到 {n}+ 条字幕", "1 transcript": "1 份转写",
    "{n} transcripts": "{n} 份转写", "Download these as a zip": "打包下载（zip）", "Nothing matches.": "没有匹配。",
    "Length": "时长", "Tags": "标签", "Done": "完成于", "No transcripts yet.": "还没有转写。",
    "speed": "速度", "Copy text": "复制文字", "Copied": "已复制", "original": "原文件",
    "space play · j/k cue · [ ] speed · click a line to go there": "空格 播放 · j/k 字幕 · [ ] 速度 · 点击一行跳转",
    "No transcript yet.": "还没有转写。", "1 subtitle rule warning (marked ⚠).": "1 条字幕规则警告（标记为 ⚠）。",
    "{n} subtitle rule warnings (marked ⚠).": "{n} 条字幕规则警告（标记为 ⚠）。",
    # Upload
    "Upload or record": "上传或录音", "No inbox is configured: add an [[inbox]] to the configuration first.":
        "没有配置收件夹：请先在配置中添加 [[inbox]]。",
    "Uploads are off ([web] upload_max_mb = 0).": "上传已关闭（[web] upload_max_mb = 0）。", "Into inbox": "放入收件夹",
    "Options for these files (default: the inbox's settings)": "这些文件的选项（默认：收件夹的设置）",
    "inbox default": "收件夹默认", "Numbers and punctuation (ITN)": "数字与标点（ITN）", "Formats": "格式",
    "Hotwords (comma-separated)": "热词（逗号分隔）",
    "The model {model} ignores hotwords: only Paraformer SeACo, contextual Paraformer and Fun-ASR-Nano models use "
    "them.": "模型 {model} 不使用热词：只有 Paraformer SeACo、上下文 Paraformer 和 Fun-ASR-Nano 模型使用。",
    "Kept beside each file as NAME.asrd-options.json and used whenever it is transcribed; the inbox's settings do "
    "not change.": "作为 NAME.asrd-options.json 保存在每个文件旁，每次转写时使用；收件夹的设置不变。",
    "Drop audio or video files, or a folder, here": "把音频、视频文件或文件夹拖到这里",
    "Choose files": "选择文件", "Choose a folder": "选择文件夹",
    "Up to {n} MiB a file. Each file is stored in the inbox once it has arrived complete and is transcribed like "
    "any other file there: you can close this page.":
        "每个文件最大 {n} MiB。文件完整到达后存入收件夹，并像其中的其他文件一样被转写：你可以关闭本页。",
    "Record": "录音", "Stop and upload": "停止并上传", "Discard": "丢弃", "Progress": "进度", "Result": "结果",
    "This page was not opened over a secure connection, so the browser offers no microphone. Open it as "
    "http://localhost:PORT/ on the machine running asrd, through an SSH tunnel (ssh -L 8765:127.0.0.1:8765 server, "
    "then http://localhost:8765/), or behind an HTTPS reverse proxy (README, \"Dashboard\").":
        "本页不是通过安全连接打开的，浏览器不提供麦克风。请在运行 asrd 的机器上以 http://localhost:PORT/ 打开，"
        "或通过 SSH 隧道（ssh -L 8765:127.0.0.1:8765 server，然后打开 http://localhost:8765/），"
        "或放在 HTTPS 反向代理之后（README 的 \"Dashboard\" 一节）。",
    # Upload, in the page's script (JS_STRINGS)
    "waiting": "等待中", "sending": "发送中", "cancelled": "已取消",
    "cancelled; nothing was kept": "已取消；没有保留任何内容",
    "larger than the limit of {n} MiB": "超过 {n} MiB 的上限", "job {id}": "任务 {id}",
    "stored as {name}": "已存为 {name}", "stored as {name} (queued once it is seen)": "已存为 {name}（发现后排队）",
    "refused: HTTP {status}": "被拒绝：HTTP {status}", "the connection broke off; nothing was kept":
        "连接中断；没有保留任何内容", "no microphone: {why}": "没有麦克风：{why}",
    # Correcting a transcript (_editor.html, editor.js)
    "Corrected by you": "已由你校对", "{files} are yours now; asrd will not replace them.":
        "{files} 现在归你所有；asrd 不会替换它们。", "A newer machine result exists": "有更新的机器结果",
    "transcribed {when}": "转写于{when}", "it is kept, not written. Compare below, or discard your edits to use it.":
        "它已保存但未写出。可在下面比较，或放弃你的编辑以采用它。", "Discard my edits": "放弃我的编辑",
    "Machine result vs. your edit: 1 difference": "机器结果与你的编辑：1 处不同",
    "Machine result vs. your edit: {n} differences": "机器结果与你的编辑：{n} 处不同",
    "machine": "机器", "edited": "已编辑", "times changed": "时间已改", "Correct the transcript": "校对转写",
    "Undo": "撤销", "Redo": "重做", "shift": "平移", "this cue": "这条字幕", "this and all after": "这条及之后全部",
    "Save": "保存",
    "Ctrl+Space play/pause · Ctrl+, / Ctrl+. back/forward 2 s · Ctrl+[ / Ctrl+] slower/faster · Alt+1 / Alt+2 "
    "start/end at the playhead · Ctrl+Enter split at the cursor · Ctrl+M merge with next · Ctrl+Z / Ctrl+Y "
    "undo/redo · Ctrl+S save": "Ctrl+空格 播放/暂停 · Ctrl+, / Ctrl+. 后退/前进 2 秒 · Ctrl+[ / Ctrl+] 减速/加速 · "
    "Alt+1 / Alt+2 开始/结束设为播放位置 · Ctrl+Enter 在光标处拆分 · Ctrl+M 与下一条合并 · Ctrl+Z / Ctrl+Y "
    "撤销/重做 · Ctrl+S 保存",
    "start": "开始", "end": "结束", "play from here": "从这里播放", "split at the cursor (Ctrl+Enter)":
        "在光标处拆分（Ctrl+Enter）", "split": "拆分", "merge with the next cue (Ctrl+M)": "与下一条合并（Ctrl+M）",
    "merge": "合并", "delete this cue": "删除这条字幕", "text": "文字",
    "put the cursor inside the text where the cue should be split": "把光标放在要拆分的文字处",
    "the last cue has nothing after it to merge with": "最后一条字幕之后没有可合并的",
    "a transcript needs one cue at least; discard your edits instead": "转写至少要有一条字幕；请改为放弃编辑",
    "enter the milliseconds to shift by (negative: earlier)": "输入要平移的毫秒数（负数：提前）",
    "that would move cue {n} before 0:00": "这会把第 {n} 条字幕移到 0:00 之前",
    "shifted {n} cue(s) by {ms} ms": "已把 {n} 条字幕平移 {ms} 毫秒", "{n} rule warning(s)": "{n} 条规则警告",
    "no rule warnings": "没有规则警告", "saving…": "正在保存…", "not saved: {why}": "未保存：{why}",
    "Leave the editor without saving your changes?": "不保存修改就离开编辑器？",
    "Discard your corrections? The sidecars are rewritten from the machine result.":
        "放弃你的校对？字幕文件将按机器结果重写。",
    "These sidecars were edited since asrd wrote them: {files}.\nReplace them with run {run} and discard your edits?":
        "这些字幕文件在 asrd 写入后被编辑过：{files}。\n用第 {run} 次运行替换它们并放弃你的编辑？", "refused": "被拒绝",

    # Log in
    "Log in": "登录", "token": "令牌",
    "That is not the token (see the file web-token).": "令牌不对（见文件 web-token）。",
    "The token is in the file web-token in asrd's state directory.": "令牌在 asrd 状态目录中的 web-token 文件里。",
    # Inboxes and System
    "top folder only": "仅顶层文件夹", "include / exclude": "包含 / 排除",
    "No inbox is configured: [[inbox]] in the config file, or folders after":
        "没有配置收件夹：在配置文件中添加 [[inbox]]，或在此命令后列出文件夹：",
    "(none)": "（无）", "no job {id}": "没有任务 {id}", "re-run & compare": "重新转写并比较",
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
    # subtitle-rule warnings (RULE_LABELS)
    "empty": "空白", "too many lines": "行数过多", "line too wide": "行太宽", "ends before it starts": "结束早于开始",
    "too long": "太长", "too short": "太短", "too fast to read": "读速过快",
    "no gap before the next cue": "与下一条之间没有间隔", "starts early": "开始过早", "ends late": "结束过晚",
}
CATALOGUES = {"zh": ZH}
# What a person reads for each rule code of ``asrd.output.cuerules.check`` (Violation.rule); keys of ZH.
RULE_LABELS = {
    "empty": "empty", "lines": "too many lines", "line_chars": "line too wide", "order": "ends before it starts",
    "max_duration": "too long", "min_duration": "too short", "reading_speed": "too fast to read",
    "gap": "no gap before the next cue", "early": "starts early", "hangover": "ends late",
}
# What the page scripts ask for with t("..."): sent along with a page in another language (<script id="i18n">).
JS_STRINGS = (
    "waiting", "sending", "Cancel", "cancelled", "cancelled; nothing was kept", "larger than the limit of {n} MiB",
    "job {id}", "stored as {name}", "stored as {name} (queued once it is seen)", "refused: HTTP {status}",
    "the connection broke off; nothing was kept", "no microphone: {why}", "Copied", "Copy text",
    # editor.js
    "start", "end", "play from here", "split at the cursor (Ctrl+Enter)", "split", "merge with the next cue (Ctrl+M)",
    "merge", "delete this cue", "text", *RULE_LABELS.values(),
    "put the cursor inside the text where the cue should be split",
    "the last cue has nothing after it to merge with",
    "a transcript needs one cue at least; discard your edits instead",
    "enter the milliseconds to shift by (negative: earlier)", "that would move cue {n} before 0:00",
    "shifted {n} cue(s) by {ms} ms", "{n} rule warning(s)", "no rule warnings", "saving…", "not saved: {why}",
    "Leave the editor without saving your changes?",
    "Discard your corrections? The sidecars are rewritten from the machine result.",
    # compare.js
    "These sidecars were edited since asrd wrote them: {files}.\nReplace them with run {run} and discard your edits?",
    "refused",
)


def rule_label(rule: str) -> str:
    """The English label of a subtitle-rule code (translated like any string); an unknown code as it is."""
    return RULE_LABELS.get(rule, rule)


def script_strings(lang: str) -> dict[str, str]:
    """The scripts' strings in ``lang``; empty for English."""
    table = CATALOGUES.get(lang, {})
    return {k: table[k] for k in JS_STRINGS if k in table}


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


class Translator(Protocol):
    def __call__(self, text: str, **values: object) -> str: ...


def translator(lang: str) -> Translator:
    """``t("page {n} of {m}", n=1, m=3)``: the text in ``lang`` (English when missing), then its {fields}."""
    table = CATALOGUES.get(lang, {})

    def t(text: str, **values: object) -> str:
        found = table.get(text, text)
        return found.format(**values) if values else found

    return t
