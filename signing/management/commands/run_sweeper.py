import time

from django.core.management.base import BaseCommand

from signing.sweeper import sweep_once


class Command(BaseCommand):
    help = "Re-send lost requests and remove orphaned TXT values, every --interval seconds."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=5.0)
        parser.add_argument("--once", action="store_true")

    def handle(self, *args, interval, once, **options):
        while True:
            counts = sweep_once()
            if once:
                self.stdout.write(" ".join(f"{k}={v}" for k, v in counts.items()))
                return
            time.sleep(interval)
