#!/usr/bin/env python3
"""`holdfast train` end to end on the tiny_v3 model (MLA with q_lora, noaux_tc MoE, MTP) and a tiny
synthetic dataset (train_fixture.py):

- --help documents every config field; malformed configs and flags fail with the key named;
- the loss goes down and the validation loss ends below the unigram entropy of the data;
- N steps straight == N/2 (stop_at) + --resume N/2: bitwise-identical loss at every step and
  identical final model.safetensors bytes; the same seed twice gives the same run;
- a corrupted newest checkpoint is skipped on --resume with the reason, and the run still ends with
  the same bytes; a checkpoint of a different model is refused; an out_dir that already holds
  checkpoints is refused without --resume;
- SIGINT at an arbitrary step stops with a checkpoint, and --resume reproduces the uninterrupted run;
- the checkpoint is a model directory `holdfast generate` loads.

Environment: HOLDFAST_BIN, HOLDFAST_SOURCE_DIR. Standard library only.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_fixture as fx  # noqa: E402


def step_losses(run_dir):
    return {l["step"]: l["loss"] for l in fx.metrics(run_dir, "step")}


def final_weights(run_dir):
    last = fx.checkpoints(run_dir)[-1]
    return fx.read_bytes(os.path.join(run_dir, "checkpoints", last, "model.safetensors"))


def main():
    fx.require_binary()
    c = fx.Checks()
    tmp = fx.temp_root("holdfast_train_cli_")
    try:
        fx.write_dataset(os.path.join(tmp, "data"))

        # --help names every field of the table.
        h = fx.run(["train", "--help"])
        c.check(h.rc == 0, "train --help exits 0")
        for key in ("--model.config", "--model.init_checkpoint", "--data.dir", "--data.val_split",
                    "--batch.global_batch", "--batch.micro_batch", "--batch.seq_len", "--steps",
                    "--optimizer.lr", "--optimizer.schedule", "--optimizer.grad_clip",
                    "--balance.bias_update_speed", "--balance.seq_aux_alpha", "--mtp.enabled",
                    "--mtp.lambda", "--seed", "--threads", "--out_dir", "--checkpoint.every",
                    "--checkpoint.keep_last", "--eval.every", "--guards.on_nan", "--guards.spike_zscore",
                    "--guards.on_spike", "--log_every", "--tokenizer", "--resume"):
            c.check(key in h.out, "--help documents " + key)

        # Config errors name the key.
        bad = fx.base_config(tmp, "bad")
        bad["optimizer"]["learning_rate"] = 1
        r = fx.run(["train", "--config", fx.write_config(tmp, "bad", bad)])
        c.check(r.rc == 1 and "unknown key 'optimizer.learning_rate'" in r.err,
                "unknown key is an error naming it: " + r.err.strip()[-200:])
        r = fx.run(["train", "--config", fx.write_config(tmp, "ok", fx.base_config(tmp, "bad")),
                    "--batch.micro_batch", "3"])
        c.check(r.rc == 1 and "batch.micro_batch = 3 must divide batch.global_batch = 4" in r.err,
                "micro_batch must divide global_batch: " + r.err.strip()[-200:])
        r = fx.run(["train", "--config", fx.write_config(tmp, "ok", fx.base_config(tmp, "bad")),
                    "--data.dir", os.path.join(tmp, "nope")])
        c.check(r.rc == 1 and "nope" in r.err and "holdfast: error:" in r.err,
                "missing dataset is a clear error: " + r.err.strip()[-200:])

        # A straight run.
        cfg = fx.base_config(tmp, "straight")
        path = fx.write_config(tmp, "straight", cfg)
        r = fx.run(["train", "--config", path])
        c.check(r.rc == 0, "straight run exits 0: " + r.err[-400:])
        straight = os.path.join(tmp, "straight")
        losses = step_losses(straight)
        c.check(sorted(losses) == list(range(1, 17)), "one step line per step")
        first, last = sum(losses[s] for s in (1, 2, 3)) / 3, sum(losses[s] for s in (14, 15, 16)) / 3
        c.check(last < first - 0.5, "loss goes down: %.3f -> %.3f" % (first, last))
        start = fx.events(straight, "start")
        evals = fx.metrics(straight, "eval")
        ent = start[0]["unigram_entropy"] if start else 0
        c.check(3.0 < ent < 4.5, "start event carries the unigram entropy (%.3f)" % ent)
        c.check(len(evals) == 2 and evals[-1]["step"] == 16, "eval at steps 8 and 16")
        c.check(evals and evals[-1]["val_loss"] < ent, "val_loss %.3f below the unigram entropy %.3f" %
                (evals[-1]["val_loss"] if evals else -1, ent))
        c.check("unigram entropy" in r.out and "val_loss" in r.out, "summary names val_loss and the unigram entropy")
        c.check(fx.checkpoints(straight) == ["step-00000008", "step-00000012", "step-00000016"],
                "keep_last 3 checkpoints: %s" % fx.checkpoints(straight))
        c.check(all(os.path.exists(os.path.join(straight, f)) for f in ("report.html", "loss.svg", "expert_load.svg")),
                "report.html, loss.svg and expert_load.svg rendered")
        c.check(len(fx.events(straight, "checkpoint")) == 4 and len(fx.events(straight, "done")) == 1,
                "checkpoint and done events")
        step_line = fx.metrics(straight, "step")[-1]
        for k in ("loss", "main_loss", "mtp_loss", "balance_loss", "lr", "grad_norm", "tokens", "tokens_per_s",
                  "step_s", "elapsed_s", "rss_mb", "skipped", "expert_load", "router_bias"):
            c.check(k in step_line, "step line has " + k)
        ck = os.path.join(straight, "checkpoints", "step-00000016")
        for f in ("model.safetensors", "optimizer.safetensors", "config.json", "state.json", "manifest.json"):
            c.check(os.path.exists(os.path.join(ck, f)), "checkpoint has " + f)
        g = fx.run(["generate", "--model", ck, "--prompt-ids", "2,3,4", "--max-tokens", "4", "--ids"])
        c.check(g.rc == 0 and '"ids"' in g.out, "holdfast generate loads the checkpoint: " + g.err[-200:])

        # Same seed, same threads: the same run.
        cfg2 = fx.base_config(tmp, "again")
        r = fx.run(["train", "--config", fx.write_config(tmp, "again", cfg2)])
        c.check(r.rc == 0, "second run exits 0")
        again = os.path.join(tmp, "again")
        c.check(step_losses(again) == losses, "same seed twice: identical loss at every step")
        c.check(final_weights(again) == final_weights(straight), "same seed twice: identical final weights")

        # Half, then resume.
        cfg3 = fx.base_config(tmp, "halves")
        p3 = fx.write_config(tmp, "halves", cfg3)
        r = fx.run(["train", "--config", p3, "--stop_at", "8"])
        halves = os.path.join(tmp, "halves")
        c.check(r.rc == 0 and max(step_losses(halves)) == 8, "first half stops at step 8")
        r = fx.run(["train", "--config", p3])
        c.check(r.rc == 1 and "--resume" in r.err, "existing checkpoints without --resume are refused: " +
                r.err.strip()[-200:])
        r = fx.run(["train", "--config", p3, "--resume"])
        c.check(r.rc == 0 and "resumed from" in r.err, "second half resumes: " + r.err[-300:])
        c.check(step_losses(halves) == losses, "N/2 + resume N/2: bitwise-identical loss at every step")
        c.check(final_weights(halves) == final_weights(straight), "N/2 + resume N/2: identical final weights")
        c.check(len(fx.events(halves, "resume")) == 1, "resume event logged")

        # Corrupt the newest checkpoint: resume skips it, says why, and ends with the same bytes.
        newest = os.path.join(halves, "checkpoints", "step-00000016", "model.safetensors")
        data = bytearray(fx.read_bytes(newest))
        data[len(data) // 2] ^= 0xFF
        with open(newest, "wb") as f:
            f.write(data)
        r = fx.run(["train", "--config", p3, "--resume"])
        c.check(r.rc == 0 and "skipping checkpoint step-00000016" in r.err and "sha256" in r.err,
                "corrupt newest checkpoint skipped with the reason: " + r.err[-400:])
        c.check("step-00000012" in r.err, "resumed from step 12")
        c.check(final_weights(halves) == final_weights(straight), "after the skip the run ends with the same weights")
        c.check(step_losses(halves) == losses, "and the same losses")

        # Ctrl-C at an arbitrary step: a checkpoint is written, and --resume continues to the same bits.
        p4 = fx.write_config(tmp, "sigint", fx.base_config(tmp, "sigint", steps=40))
        fx.write_config(tmp, "sigint_ref", fx.base_config(tmp, "sigint_ref", steps=40))
        ref = os.path.join(tmp, "sigint_ref")
        r = fx.run(["train", "--config", os.path.join(tmp, "sigint_ref.json")])
        c.check(r.rc == 0, "40-step reference run")
        sig = os.path.join(tmp, "sigint")
        proc = subprocess.Popen([fx.BIN, "train", "--config", p4], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            try:
                if len(fx.metrics(sig, "step")) >= 3:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        stopped_at = max(step_losses(sig)) if os.path.exists(os.path.join(sig, "metrics.jsonl")) else 0
        c.check(proc.returncode == 0 and b"stopped at step" in out, "SIGINT stops the run cleanly at step %d: %s" %
                (stopped_at, err.decode()[-200:]))
        c.check(fx.checkpoints(sig)[-1:] == ["step-%08d" % stopped_at], "a checkpoint of the stop step")
        r = fx.run(["train", "--config", p4, "--resume"])
        c.check(r.rc == 0 and step_losses(sig) == step_losses(ref) and final_weights(sig) == final_weights(ref),
                "after SIGINT at step %d, --resume gives the uninterrupted run's losses and weights" % stopped_at)

        # A checkpoint of a different model is refused.
        other = json.load(open(fx.TINY_CONFIG))
        other["moe_intermediate_size"] = 64
        other_path = os.path.join(tmp, "other_model.json")
        json.dump(other, open(other_path, "w"))
        r = fx.run(["train", "--config", p3, "--resume", "--model.config", other_path])
        c.check(r.rc == 1 and "different model" in r.err and "moe_intermediate_size" in r.err,
                "different model config refused: " + r.err.strip()[-300:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    c.finish()


if __name__ == "__main__":
    main()
