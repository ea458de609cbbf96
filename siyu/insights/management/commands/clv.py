"""``siyu clv fit``: fit BG/NBD (and Gamma-Gamma when amounts are given) on any transaction file.

siyu clv fit --transactions FILE --customer-col C --date-col D [--date-format F]
             [--amount-col A] [--observation-end YYYY-MM-DD] [--time-unit days|weeks] [--json]

Columns are header names, or 0-based indexes for a file without a header. Same-day transactions
of a customer count as one; the first purchase starts the clock. The observation period ends on
--observation-end (default: the last date in the file); later transactions are ignored.
Exit status 2 means a bad invocation or an unreadable/invalid file; 1 means the data cannot
support the model (e.g. no repeat purchases).
"""

import json
from datetime import date
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from siyu.insights.clv import ModelError, fit_bgnbd, fit_gamma_gamma, summarise
from siyu.insights.transactions import TransactionFileError, read_transactions

EXIT_MODEL = 1
EXIT_USAGE = 2
DAYS_PER_UNIT = {"days": 1.0, "weeks": 7.0}


class Command(BaseCommand):
    help = "Customer lifetime value models. fit: BG/NBD + Gamma-Gamma on a transaction file."
    requires_system_checks: list[str] = []  # a local tool: no database

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=CommandParser)
        from_cli = getattr(parser, "called_from_command_line", None)
        fit = sub.add_parser(
            "fit", help="fit the models on a transaction file", called_from_command_line=from_cli
        )
        fit.add_argument("--transactions", required=True, help="CSV or whitespace-separated file")
        fit.add_argument("--customer-col", required=True, help="header name or 0-based index")
        fit.add_argument("--date-col", required=True, help="header name or 0-based index")
        fit.add_argument("--date-format", help="strptime format (default: ISO, e.g. 20240301)")
        fit.add_argument("--amount-col", help="header name or 0-based index; enables Gamma-Gamma")
        fit.add_argument("--observation-end", help="YYYY-MM-DD (default: last date in the file)")
        fit.add_argument("--time-unit", choices=sorted(DAYS_PER_UNIT), default="weeks")
        fit.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            data = read_transactions(
                Path(options["transactions"]),
                customer_col=options["customer_col"],
                date_col=options["date_col"],
                amount_col=options["amount_col"],
                date_format=options["date_format"],
            )
        except TransactionFileError as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from exc
        end_day = int(data.day.max())
        if options["observation_end"]:
            try:
                end_day = date.fromisoformat(options["observation_end"]).toordinal()
            except ValueError:
                raise CommandError(
                    "--observation-end must be a date, YYYY-MM-DD", returncode=EXIT_USAGE
                ) from None
        summary = summarise(
            customer_index=data.customer_index,
            day=data.day,
            amount=data.amount,
            end_day=end_day,
            days_per_unit=DAYS_PER_UNIT[options["time_unit"]],
        )
        try:
            bgnbd = fit_bgnbd(summary.x, summary.t_x, summary.T)
            result: dict[str, float] = {
                "r": bgnbd.r,
                "alpha": bgnbd.alpha,
                "a": bgnbd.a,
                "b": bgnbd.b,
                "bgnbd_log_likelihood": bgnbd.log_likelihood,
            }
            if data.amount is not None:
                spend = fit_gamma_gamma(summary.x, summary.monetary)
                result |= {
                    "p": spend.p,
                    "q": spend.q,
                    "gamma": spend.gamma,
                    "gamma_gamma_log_likelihood": spend.log_likelihood,
                }
        except ModelError as exc:
            raise CommandError(str(exc), returncode=EXIT_MODEL) from exc
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        repeaters = int((summary.x > 0).sum())
        self.stdout.write(
            f"{len(summary.x)} customers ({repeaters} with repeat purchases), "
            f"observed until {date.fromordinal(end_day)}, time unit {options['time_unit']}"
        )
        self.stdout.write(
            f"BG/NBD       r={bgnbd.r:.4f} alpha={bgnbd.alpha:.4f} a={bgnbd.a:.4f} "
            f"b={bgnbd.b:.4f} log-likelihood={bgnbd.log_likelihood:.4f}"
        )
        if "p" in result:
            self.stdout.write(
                f"Gamma-Gamma  p={result['p']:.4f} q={result['q']:.4f} "
                f"gamma={result['gamma']:.4f} "
                f"log-likelihood={result['gamma_gamma_log_likelihood']:.4f}"
            )
