# ngx_http_apikey_module
#
#   make          build build/ngx_http_apikey_module.so for Debian's nginx
#   make test     install what is missing, build, run the whole test suite
#   make run      install, build, start Redis and nginx on loopback (run/)
#   make stop     stop what make run started
#   make bench    throughput of a gatekept location against a bare one
#   make bench-scale  the figures at a million keys against their targets
#                 (t/bench_scale.sh; BENCH_SCALE_KEYS=20000 for a smaller run)
#   make check    the suite under ASan and UBSan, and the fuzz targets
#   make chaos    the seeded fault campaign's fixed seed set (t/chaos/README);
#                 SEEDS=200 runs seeds 1..200 (or a list: SEEDS='3 17 42'),
#                 SEED=17 replays one
#   make deb      the Debian package libnginx-mod-http-apikey, in build/deb/
#   make package-test  install that package, use it, purge it (root; the
#                 system's own nginx and dpkg: not part of make test)

SHELL     := /bin/bash
NGX_SRC   ?= /usr/share/nginx/src
NGINX     ?= /usr/sbin/nginx
BUILD     := build
MODULE    := $(BUILD)/ngx_http_apikey_module.so
KEYTOOL   := $(BUILD)/apikey-key
CFLAGS_M  := -g -O2 -fPIC -Wall -Wextra -Werror -Wno-unused-parameter
SOURCES   := config $(wildcard ngx_http_apikey_module/*.[ch] \
               ngx_http_apikey_module/*.lua admin/*.[ch] admin/*.lua \
               ngx_http_apikey_module/*.lua.in admin/*.lua.in admin/console/*)
PACKAGES  := nginx nginx-dev libhiredis-dev libjansson-dev libssl-dev \
             libpcre2-dev zlib1g-dev redis-server redis-tools gcc make \
             perl curl wrk procps python3 redis-sentinel prometheus \
             libfaketime \
             chromium

CHECK_PACKAGES := clang libclang-rt-14-dev dpkg-dev

.PHONY: all deps check-deps test unit run stop bench bench-scale check chaos \
        clean

all: $(MODULE) $(KEYTOOL)

deps check-deps: PKGS = $(if $(filter check-deps,$@),$(CHECK_PACKAGES),$(PACKAGES))

deps check-deps:
	@missing=; \
	for p in $(PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends $$missing; \
	fi

# nginx's configure runs from its own tree: configure a private copy of
# Debian's nginx-dev sources with the flags Debian's nginx was built with.
# The Lua scripts (and admin/*.lua.in, the library config puts in front
# of the admin scripts) and the console's files become headers at
# configure time, so they count here.

$(BUILD)/nginx/objs/Makefile: $(filter config %.lua %.lua.in admin/console/%,\
                                        $(SOURCES)) \
                              $(NGX_SRC)/conf_flags
	rm -rf $(BUILD)/nginx
	mkdir -p $(BUILD)
	cp -r $(NGX_SRC) $(BUILD)/nginx
	. $(NGX_SRC)/conf_flags && cd $(BUILD)/nginx && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt='$(CFLAGS_M)' \
	        --add-dynamic-module=$(CURDIR) > configure.log \
	    || { tail -20 configure.log; exit 1; }

$(MODULE): $(BUILD)/nginx/objs/Makefile $(SOURCES)
	$(MAKE) -C $(BUILD)/nginx -f objs/Makefile modules
	cp $(BUILD)/nginx/objs/ngx_http_apikey_module.so $@

$(KEYTOOL): t/unit/apikey_key_cli.c ngx_http_apikey_module/ngx_http_apikey_key.c \
            ngx_http_apikey_module/ngx_http_apikey_key.h
	mkdir -p $(BUILD)
	cc -O2 -Wall -Wextra -Werror -Ingx_http_apikey_module -o $@ \
	    t/unit/apikey_key_cli.c ngx_http_apikey_module/ngx_http_apikey_key.c \
	    -lcrypto

test: deps all
	prove -r t/

# the Node tools of the tests (t/package.json), when npm is there; a failed
# install leaves nothing, and the tests that need them skip or say why

NPM := $(shell command -v npm 2>/dev/null)

ifneq ($(NPM),)
test: t/node_modules
endif

t/node_modules: t/package-lock.json
	npm ci --prefix t --no-audit --no-fund || rm -rf $@
	@touch -c $@

run: deps all
	@t/run.sh start

stop:
	@t/run.sh stop

# nginx from Debian's source with ASan and UBSan, the suite against it,
# then the fuzz targets: t/check.sh

check: deps check-deps all
	@t/check.sh

# The fault campaign: its checker's self-test, then the seeds; each
# failing seed's evidence is kept in build/chaos/seed-N.

chaos: deps all
	prove t/chaos/selftest.t
	t/chaos/run $(if $(SEED),--seed '$(SEED)',$(if $(SEEDS),--seeds '$(SEEDS)'))

bench: deps all
	@t/bench.sh
	@t/bench_cache.sh
	@t/bench_admin.sh

bench-scale: deps all
	@t/bench_scale.sh

clean:
	rm -rf $(BUILD)

# The Debian package: dpkg-buildpackage writes next to the source tree, so
# it builds a copy in build/deb/src and its output lands in build/deb/.

# redis-server, redis-tools, curl and perl are for make package-test.

DEB_DIR      := $(BUILD)/deb
DEB_PACKAGES := dpkg-dev debhelper build-essential nginx nginx-dev \
                libhiredis-dev libjansson-dev libssl-dev lintian \
                redis-server redis-tools curl perl

.PHONY: deb-deps deb package-test

deb-deps:
	@$(MAKE) --no-print-directory deps PACKAGES='$(DEB_PACKAGES)'

deb: deb-deps
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	tar -c --exclude=./$(BUILD) --exclude=./run --exclude=./.git . \
	    | tar -x -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && dpkg-buildpackage -us -uc -b
	lintian --fail-on error --info $(DEB_DIR)/*.changes

package-test: deb
	t/package.sh
