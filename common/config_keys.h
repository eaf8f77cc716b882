/*
 * config_keys.h: THE table of configuration keys.  One line per key; this
 * table drives the config file parser, `--set section.key=value` on every
 * program, the config dump, `slmctl config get/set/list`, and the check of
 * docs/config.md.  Add a key here and document it there.
 *
 * SLM_CFG_KEY(ID, section, name, type, default, min, max, choices, mode, help)
 *   type:    BOOL, INT, SIZE (bytes, suffixes K/M/G/T = powers of 1024),
 *            DOUBLE, STRING, ENUM (one of the '|'-separated choices)
 *   min/max: bounds for INT, SIZE and DOUBLE (inclusive)
 *   mode:    RUNTIME (may change while running) or STATIC (restart)
 */

/* clang-format off */
SLM_CFG_KEY(LOG_LEVEL, "log", "level", ENUM, "info", 0, 0,
	"error|warn|info|debug|trace", RUNTIME,
	"Lowest level of message written to the log.")
SLM_CFG_KEY(LOG_TARGET, "log", "target", ENUM, "auto", 0, 0,
	"auto|stderr|journal", STATIC,
	"Where log lines go: the journal when running under systemd (auto), "
	"or always stderr, or always the journal.")

SLM_CFG_KEY(MODEL_PATH, "model", "path", STRING, "", 0, 0, NULL, STATIC,
	"GGUF model file to serve.  Empty: slmd makes a small synthetic model "
	"(random weights, its text is gibberish) so the box runs without a "
	"download.")

SLM_CFG_KEY(ENGINE_THREADS, "engine", "threads", INT, "0", 0, 1024, NULL,
	STATIC,
	"Threads per forward pass; 0 means one per core of the worker group.")
SLM_CFG_KEY(ENGINE_SIMD, "engine", "simd", ENUM, "auto", 0, 0,
	"auto|scalar|avx2|avx512", STATIC,
	"Widest instruction set the kernels may use; auto picks the best the "
	"CPU has.  A narrower choice is for comparison or to work around a "
	"fault.")
SLM_CFG_KEY(ENGINE_SPIN_US, "engine", "spin_us", INT, "5000", 0, 10000000,
	NULL, STATIC,
	"Microseconds a pool thread spins for work before it sleeps (waking "
	"costs tens of microseconds): cover the gaps of a busy server.")

SLM_CFG_KEY(CTL_SOCKET, "ctl", "socket", STRING, "/run/slmd/ctl.sock", 0, 0,
	NULL, STATIC,
	"Path of the control socket that slmctl talks to.")
/* clang-format on */
