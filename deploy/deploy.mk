# Deploy to a Raspberry Pi over ssh (included by the top-level Makefile). See docs/DEPLOY.md.
#   make deploy PI=pi@raspberrypi.local      upload a new release, install, restart, wait until active
#   make deploy-check PI=...                 is the Pi ready? (read-only)
#   make logs PI=...                         follow the service's journal
#   make rollback PI=...                     switch back to the previous release and restart
#   make undeploy PI=... [PURGE=1]           stop and remove (PURGE=1: config, state and user too)
#   make arm64-check                         no Pi: install and run in an arm64 Debian root under qemu (root)
# Options (also from the environment): PI_PORT, PI_KEY, PI_SSH_OPTS; more in deploy/deploy.sh.

DEPLOY_SH := $(dir $(lastword $(MAKEFILE_LIST)))deploy.sh

.PHONY: deploy deploy-check logs rollback undeploy arm64-check

deploy: ## Deploy to a Raspberry Pi: make deploy PI=user@host
	@bash $(DEPLOY_SH) deploy

deploy-check: ## Check a Pi is ready for deploy: make deploy-check PI=user@host
	@bash $(DEPLOY_SH) check

logs: ## Follow the Pi's moodcast journal: make logs PI=user@host
	@bash $(DEPLOY_SH) logs

rollback: ## Switch the Pi back to its previous release: make rollback PI=user@host
	@bash $(DEPLOY_SH) rollback

undeploy: ## Remove moodcast from the Pi: make undeploy PI=user@host [PURGE=1]
	@bash $(DEPLOY_SH) undeploy

ARM64_SUITE ?= bookworm

arm64-check: $(VENV)/.device ## The Pi install on arm64 without a Pi: debootstrap + qemu, events vs this machine's
	@ARM64_SUITE=$(ARM64_SUITE) VIDEO=$(VIDEO) bash $(dir $(DEPLOY_SH))arm64-check.sh
