import os

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the Dramatiq worker that drives the ACME flow (wraps rundramatiq)."

    def add_arguments(self, parser):
        parser.add_argument("--processes", type=int, default=2)
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument("--pid-file", default=None)

    def handle(self, *args, processes, threads, pid_file, **options):
        # Dramatiq wakes its consumers every worker_timeout ms to release delayed messages;
        # its default (1 s) would add up to a second to every short ACME poll.
        os.environ.setdefault("dramatiq_worker_timeout", "50")
        extra = ["--pid-file", pid_file] if pid_file else []
        call_command("rundramatiq", "--processes", str(processes), "--threads", str(threads),
                     *extra)
