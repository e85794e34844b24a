"""``asrd bench``: asrd against FunASR's own pipelines, same files, model, device and threads.

Pipelines, each in a fresh child process (so one's memory cannot flatter another):
  funasr_vad    FunASR's README recipe: AutoModel(model, vad_model=fsmn-vad), generate() per file
  funasr_plain  AutoModel(model) without VAD, generate() per file (what most scripts do; memos only)
  asrd          asrd's own pipeline, files in, sidecars out
Timing starts after the model is loaded and includes decoding. Peak RSS is measured after the
load (the kernel's high-water mark is reset then), so it shows what processing costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from asrd.config import available_cpus
from asrd.records import SAMPLE_RATE

REPO_SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PIPELINES = ("funasr_vad", "funasr_plain", "asrd")


@dataclass(frozen=True)
class Run:
    pipeline: str
    workload: str
    audio_seconds: float
    wall_seconds: float
    load_seconds: float
    peak_rss_mb: float
    peak_gpu_mb: float
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rtf(self) -> float:
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else 0.0

    @property
    def hours_per_minute(self) -> float:
        return (self.audio_seconds / 3600) / (self.wall_seconds / 60) if self.wall_seconds else 0.0


def _vm_hwm_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass


def child(args: argparse.Namespace) -> None:
    """One pipeline over a list of files, in this process; writes a JSON result."""
    import torch

    from asrd.worker.audio import load

    files = [Path(p) for p in args.files]
    cuda = args.device.startswith("cuda")
    started = time.monotonic()
    if args.pipeline == "asrd":
        from asrd.config import load_settings
        from asrd.recognizer.funasr import FunASRRecognizer
        from asrd.transcribe import Pipeline

        out = Path(tempfile.mkdtemp(prefix="asrd-bench-"))
        settings = load_settings(None, {"output": {"output_dir": str(out), "formats": ["txt", "srt"]}})
        recognizer = FunASRRecognizer(
            Path(args.model), device=args.device, threads=args.threads, precision=args.precision
        )
        pipeline = Pipeline(settings, recognizer, overwrite=True)
    else:
        from funasr import AutoModel

        extra: dict[str, Any] = {}
        if args.pipeline == "funasr_vad":
            extra = {"vad_model": args.vad_model, "vad_kwargs": {"max_single_segment_time": 30000}}
        model = AutoModel(
            model=args.model, device=args.device, ncpu=args.threads or available_cpus(), disable_update=True,
            disable_pbar=True, **extra
        )

        def process(path: Path) -> float:
            audio = load(path)
            if args.pipeline == "funasr_vad":
                # The call from FunASR's SenseVoice README.
                model.generate(input=audio, cache={}, language="auto", use_itn=True, batch_size_s=60,
                               merge_vad=True, merge_length_s=15)
            else:
                model.generate(input=audio, language="auto", use_itn=True)
            return len(audio) / SAMPLE_RATE

    load_seconds = time.monotonic() - started
    _reset_peak()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    audio = wall = 0.0
    per_file = []
    if args.pipeline == "asrd":
        # All files at once: the engine batches speech across them (files in, sidecars out).
        t0 = time.monotonic()
        for outcome in pipeline.transcribe_many(files):
            if not hasattr(outcome, "transcript"):
                raise RuntimeError(f"{outcome.source}: {outcome.error}")
            seconds = outcome.transcript.duration / SAMPLE_RATE
            audio += seconds
            # Files are batched together: a file's time is when it was done, counted from the start.
            per_file.append({"name": outcome.source.name, "audio_seconds": round(seconds, 2),
                             "wall_seconds": round(time.monotonic() - t0, 3)})
        if cuda:
            torch.cuda.synchronize()
        wall = time.monotonic() - t0
    else:
        for path in files:
            t0 = time.monotonic()
            seconds = process(path)
            if cuda:
                torch.cuda.synchronize()
            took = time.monotonic() - t0
            audio += seconds
            wall += took
            per_file.append({"name": path.name, "audio_seconds": round(seconds, 2), "wall_seconds": round(took, 3)})
    result = {
        "audio_seconds": audio,
        "wall_seconds": wall,
        "load_seconds": load_seconds,
        "peak_rss_mb": _vm_hwm_mb(),
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0,
        "files": per_file,
    }
    Path(args.result).write_text(json.dumps(result))


def _spawn(pipeline: str, workload: str, files: list[Path], opts: argparse.Namespace) -> Run:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    cmd = [
        sys.executable, "-m", "asrd.bench", "--child", pipeline, "--result", str(result_path),
        "--model", str(opts.model), "--vad-model", str(opts.vad_model), "--device", opts.device,
        "--threads", str(opts.threads), "--precision", opts.precision, *map(str, files),
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{pipeline} on {workload} failed:\n{proc.stderr[-3000:]}")
    data = json.loads(result_path.read_text())
    result_path.unlink()
    return Run(pipeline=pipeline, workload=workload, **data)


def _table(runs: list[Run]) -> str:
    head = f"{'pipeline':<13}{'workload':<9}{'audio h':>8}{'wall s':>9}{'RTF':>8}{'h/min':>8}"
    head += f"{'x (a)':>7}{'x (b)':>7}{'RSS MB':>8}{'GPU MB':>8}"
    lines = [head, "-" * len(head)]
    for run in runs:
        base = {r.pipeline: r for r in runs if r.workload == run.workload}

        def ratio(name: str, run: Run = run, base: dict[str, Run] = base) -> str:
            other = base.get(name)
            return f"{other.rtf / run.rtf:7.2f}" if other and run.rtf else f"{'-':>7}"

        lines.append(
            f"{run.pipeline:<13}{run.workload:<9}{run.audio_seconds / 3600:8.3f}{run.wall_seconds:9.1f}"
            f"{run.rtf:8.4f}{run.hours_per_minute:8.2f}{ratio('funasr_vad')}{ratio('funasr_plain')}"
            f"{run.peak_rss_mb:8.0f}{run.peak_gpu_mb:8.0f}"
        )
    return "\n".join(lines)


def main(opts: argparse.Namespace) -> int:
    from asrd.testing import workloads

    work = Path(opts.work_dir or Path(tempfile.gettempdir()) / "asrd-bench")
    if opts.model is None:
        from asrd.testing import build_sensevoice

        opts.model = build_sensevoice(work / "models" / "sensevoice-full", size="full")
        print(f"model: full-size SenseVoiceSmall with RANDOM weights ({opts.model}); compute does not depend on "
              "weight values, so the speed is honest, the text is not", file=sys.stderr)
    pool = workloads.speech_pool(opts.audio_dir)
    memo_count = 20 if opts.quick else opts.memos
    long_minutes = [3.0] if opts.quick else opts.long_minutes
    sets = {
        "memos": workloads.memos(pool, work / "memos", memo_count),
        "long": [workloads.long_recording(pool, work / "long", m) for m in long_minutes],
    }
    runs: list[Run] = []
    for workload in opts.workload:
        for pipeline in opts.pipelines:
            if pipeline == "funasr_plain" and workload == "long":
                continue  # one forward over the whole file: 8.5 GB for 10 min, quadratic beyond
            files = sets[workload]
            print(f"running {pipeline} on {workload} ({len(files)} files) ...", file=sys.stderr)
            if workload == "long":
                parts = [_spawn(pipeline, workload, [f], opts) for f in files]  # peak RSS per file
                runs.append(Run(
                    pipeline, workload, sum(p.audio_seconds for p in parts), sum(p.wall_seconds for p in parts),
                    max(p.load_seconds for p in parts), max(p.peak_rss_mb for p in parts),
                    max(p.peak_gpu_mb for p in parts),
                    [{**p.files[0], "peak_rss_mb": round(p.peak_rss_mb)} for p in parts],
                ))
            else:
                runs.append(_spawn(pipeline, workload, files, opts))
            print(_table(runs[-1:]).splitlines()[-1], file=sys.stderr)
    print(f"device {opts.device}, precision {opts.precision} (asrd's; FunASR's pipelines run in the fp32 FunASR "
          f"loads), {opts.threads or 'auto'} threads, model {opts.model}")
    print(_table(runs))
    for run in runs:
        if run.workload == "long":
            for f in run.files:
                print(f"  {run.pipeline} {f['name']}: {f['audio_seconds'] / 60:.1f} min, RTF "
                      f"{f['wall_seconds'] / f['audio_seconds']:.4f}, peak RSS {f['peak_rss_mb']} MB")
    if opts.json:
        doc = {
            "device": opts.device, "precision": opts.precision, "model": str(opts.model), "threads": opts.threads,
            "runs": [{**asdict(r), "rtf": r.rtf, "hours_per_minute": r.hours_per_minute} for r in runs],
        }
        Path(opts.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="model directory (default: full-size random SenseVoiceSmall)")
    parser.add_argument("--vad-model", type=Path, default=REPO_SHARED / "models" / "fsmn-vad",
                        help="FSMN-VAD directory for FunASR's pipeline")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="model threads (default: asrd's plan; FunASR gets all CPUs this process may use)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--audio-dir", type=Path, default=REPO_SHARED / "audio", help="real speech to build inputs")
    parser.add_argument("--work-dir", type=Path, help="where inputs and models are cached")
    parser.add_argument("--workload", type=lambda v: v.split(","), default=["memos", "long"])
    parser.add_argument("--pipelines", type=lambda v: v.split(","), default=list(PIPELINES))
    parser.add_argument("--memos", type=int, default=200)
    parser.add_argument("--long-minutes", type=lambda v: [float(x) for x in v.split(",")], default=[10.0, 60.0])
    parser.add_argument("--quick", action="store_true", help="small workloads, a few minutes on a CPU")
    parser.add_argument("--json", type=Path, help="also write the results here")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m asrd.bench")
    add_arguments(parser)
    parser.add_argument("--child", choices=PIPELINES)
    parser.add_argument("--result")
    parser.add_argument("files", nargs="*")
    ns = parser.parse_args()
    if ns.child:
        ns.pipeline = ns.child
        child(ns)
    else:
        sys.exit(main(ns))
