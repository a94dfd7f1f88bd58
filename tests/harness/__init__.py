"""Harnesses that run longer than the tests: kill a training run and resume it
(``python -m tests.harness.kill_resume``), fuzz the image decoder
(``python -m tests.harness.fuzz_images``). The tests run their short versions."""
