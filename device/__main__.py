"""``python -m device``: parse arguments, load the config, set up logging, run the daemon."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn

from device.config import Config, add_cli_arguments, load_config
from device.console import print_err, print_out
from device.const import APP_NAME
from device.errors import MoodcastError
from device.log import setup_logging
from device.preflight import file_problems, model_problem, source_problem
from device.version import version

logger = logging.getLogger("device")


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its errors in one line: it printed its usage first, a line or more per key."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog=APP_NAME,
        description="Real-time facial-emotion daemon: camera → faces → emotions → screen and MQTT.",
    )
    parser.add_argument("--version", action="store_true", help=f"print '{APP_NAME} <version>' and exit")
    parser.add_argument("--config", type=Path, help="TOML config file (e.g. /etc/moodcast/moodcast.toml)")
    parser.add_argument("--check-config", action="store_true", help="validate the config and exit 0 or 1")
    parser.add_argument(
        "--print-config", action="store_true", help="print the merged config (password masked)"
    )
    add_cli_arguments(parser)
    return parser.parse_args(argv)


def run(config: Config) -> None:
    """Run the daemon until its source ends or SIGTERM/SIGINT."""
    threading.current_thread().name = "pipeline"
    stop_event = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        logger.info("%s received; stopping", signal.Signals(signum).name)
        stop_event.set()

    # Before OpenCV and the TFLite runtime are imported and the app loads its model and cascades (seconds on
    # a Pi): Ctrl-C there gave a KeyboardInterrupt traceback, SIGTERM an exit without a word.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    from device.app import MoodcastApp

    app = MoodcastApp(config, stop_event)
    try:
        if not stop_event.is_set():
            app.start()
            app.run()
    finally:
        app.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.version:  # before the config: it answers whatever the config says
        try:
            line = f"{APP_NAME} {version()}"
        except MoodcastError as err:
            print_err(f"{APP_NAME}: {err}")
            return 1
        return print_out(line, APP_NAME)
    cli = {key: value for key, value in vars(args).items() if "." in key or key == "device_id"}
    try:
        config = load_config(args.config, cli=cli)
    except MoodcastError as err:
        print_err(f"{APP_NAME}: {err}")
        return 1
    if args.check_config:
        problems = file_problems(config)
        if not problems and (problem := model_problem(config)):  # loads the model as the daemon would
            problems.append(problem)
        if problem := source_problem(config):
            problems.append(problem)
        for problem in problems:
            print_err(f"{APP_NAME}: {problem}")
        if problems:
            return 1
        print_err(f"{APP_NAME}: config OK")
        return 0
    if args.print_config:
        return print_out(json.dumps(config.masked(), indent=2), APP_NAME)
    setup_logging(config.log.level)
    try:
        run(config)
    except MoodcastError as err:
        if config.log.level == "debug":
            logger.exception("stopped by an error")
        print_err(f"{APP_NAME}: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
