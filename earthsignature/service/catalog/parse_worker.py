"""The process that parses client filters for ``parser_pool``: one JSON request per line on stdin, one JSON
answer per line on stdout, until stdin closes.

It exists so that a parse can be killed. cql2's parser backtracks (23 levels of parentheses took 31 s, each
level doubling it) and holds the interpreter lock while it does, so in the server's own process one filter
would stop every request; here the pool kills this process when the parse runs over its time. Before each
parse the process also lowers its own CPU-time limit (the kernel ends it with SIGXCPU, whatever the parser is
doing) and its address space is capped, so not even an orphaned worker can run away.
"""

from __future__ import annotations

import json
import math
import resource
import sys


def parse_cql2(expression, language: str | None) -> dict:
    import cql2

    if isinstance(expression, str) and (language == "cql2-json" or expression.lstrip().startswith("{")):
        expression = json.loads(expression)
    return cql2.Expr(expression).to_json()


def answer(request: dict) -> dict:
    try:
        return {"ok": parse_cql2(request["expression"], request.get("language"))}
    except RecursionError:
        return {"error": "the filter nests too deeply"}
    except MemoryError:
        return {"error": "the filter needs more memory to parse than a filter may use"}
    except Exception as error:  # cql2 raises a bare Exception for a syntax error
        return {"error": f"the filter is not valid CQL2: {' '.join(str(error).split())[:300]}"}


def main() -> None:
    memory_mb, seconds = int(sys.argv[1]), float(sys.argv[2])
    import cql2  # noqa: F401  (loaded before the cap: its library is part of the baseline)

    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024 * 1024, resource.RLIM_INFINITY))
    sys.stdout.write('{"ready":true}\n')
    sys.stdout.flush()
    for line in sys.stdin:
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = used.ru_utime + used.ru_stime
        resource.setrlimit(resource.RLIMIT_CPU, (math.ceil(spent + seconds) + 1, resource.RLIM_INFINITY))
        try:
            reply = answer(json.loads(line))
            text = json.dumps(reply, separators=(",", ":"))
        except (ValueError, RecursionError, MemoryError):
            text = json.dumps({"error": "the filter's parsed form cannot be handed back (too deep or too large)"})
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
