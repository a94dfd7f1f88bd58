"""Serve a captioner over HTTP: a JSON API, Prometheus metrics and a page to try it.

    captioner serve [--model DIR] [--host 127.0.0.1] [--port 8000] [--workers N]
    curl -F images=@photo.jpg 'http://127.0.0.1:8000/v1/caption?beam=3&n_best=2'

Open http://127.0.0.1:8000/ to drop images and point at their words; /docs describes
the API. The search options set what a request gets where it asks for nothing else.
SIGTERM or Ctrl-C stops taking requests and answers those accepted (exit 0, or 130 for
Ctrl-C); a second signal exits at once.
"""

import sys

from captioner.cli import ArgumentParser, add_config_options, config_from_args, run
from captioner.commands import default_model_dir

PROG = "captioner serve"


def build_parser(prog=PROG):
    from captioner.config import SearchConfig, ServeConfig
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                            usage="%(prog)s [--model DIR] [--host ADDRESS] [--port PORT] "
                                  "[--workers N] [options]")
    model = parser.group("model")
    model.add_argument("--model", action="append", dest="models", metavar="DIR",
                       help="model folder (default: the bundled model, which knows only "
                            "synthetic shapes); given more than once, the models' ensemble "
                            "(one vocabulary)")
    add_config_options(parser, ServeConfig)
    add_config_options(parser, SearchConfig, "default search (a request's options replace "
                                             "these)")
    return parser


def main(argv=None, prog=PROG):
    """Exit status: 0 stopped by SIGTERM, 130 by Ctrl-C, 2 a model or address that cannot
    be served (one line)."""
    from captioner.config import SearchConfig, ServeConfig
    from captioner.errors import ConfigError
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(ServeConfig, args)
        search = config_from_args(SearchConfig, args)
    except ConfigError as error:
        parser.error(str(error))
    if search.beam > config.max_beam:
        parser.error(f"--beam {search.beam} is over --max-beam {config.max_beam}")
    from captioner.cli import import_keras_quietly
    from captioner.serve.server import check_model, serve
    models = args.models or [default_model_dir()]
    for folder in models:
        check_model(folder)
    if config.workers == 1:  # a supervisor of workers loads no model of its own
        import_keras_quietly()
    return serve(models, config, search)


def entry(prog=PROG):
    sys.exit(run(lambda argv: main(argv, prog=prog)))
