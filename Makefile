# CSR Proxy. `make demo` runs it, `make test` tests it, `make stop` stops what they started.
.PHONY: demo test test-faults stop stack lint bench clean

VENV := .venv/.installed

$(VENV): requirements/base.txt requirements/test.txt scripts/venv.sh
	scripts/venv.sh

stack: $(VENV)
	scripts/stack-up.sh
	scripts/write-env.sh

demo: $(VENV)
	scripts/demo.sh

test: stack
	.venv/bin/ruff check .
	.venv/bin/python manage.py collectstatic --noinput -v 0
	scripts/browser-setup.sh
	.venv/bin/pytest --ignore=tests/faults
	$(MAKE) test-faults

# The fault suite restarts RabbitMQ and kills workers: it runs on its own, on its own queue.
test-faults: stack
	DRAMATIQ_QUEUE=csrproxy-faults .venv/bin/pytest tests/faults

stop:
	scripts/demo-down.sh
	scripts/stack-down.sh

lint: $(VENV)
	.venv/bin/ruff check .

bench: stack
	.venv/bin/python bench/run.py $(BENCH_ARGS)

clean: stop
	rm -rf .venv .stack .run staticfiles
