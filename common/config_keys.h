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

SLM_CFG_KEY(MODEL_LOAD, "model", "load", ENUM, "uring", 0, 0,
	"uring|read|mmap", STATIC,
	"How weights reach memory: uring (io_uring, O_DIRECT, node-local "
	"memory), read (pread through the page cache) or mmap (the page "
	"cache's pages: shared, not node-local).")
SLM_CFG_KEY(MODEL_LOAD_QUEUE_DEPTH, "model", "load_queue_depth", INT, "32",
	1, 4096, NULL, STATIC,
	"Reads in flight while loading with model.load = uring.")
SLM_CFG_KEY(MODEL_LOAD_BLOCK_SIZE, "model", "load_block_size", SIZE, "1M",
	4096, 1073741824, NULL, STATIC,
	"Bytes per read while loading weights (rounded up to the file "
	"system's direct-I/O alignment).")
SLM_CFG_KEY(MODEL_LOAD_DIRECT, "model", "load_direct", BOOL, "true", 0, 0,
	NULL, STATIC,
	"Read weights with O_DIRECT (no page-cache copy) with model.load = "
	"uring; where the file system refuses it, buffered reads (logged).")

SLM_CFG_KEY(MODEL_LOAD_THP, "model", "load_thp", ENUM, "collapse", 0, 0,
	"collapse|fault|off", STATIC,
	"Huge pages for weights when none are reserved: collapse (read into "
	"small pages, then move to huge pages in the background), fault "
	"(huge pages as reads land) or off.")

SLM_CFG_KEY(ENGINE_THREADS, "engine", "threads", INT, "0", 0, 1024, NULL,
	STATIC,
	"Threads per forward pass; 0 means one per core of the worker group.")
SLM_CFG_KEY(ENGINE_SIMD, "engine", "simd", ENUM, "auto", 0, 0,
	"auto|scalar|avx2|avx512", STATIC,
	"Widest instruction set the kernels may use; auto picks the best the "
	"CPU has.  A narrower choice is for comparison or to work around a "
	"fault.")

SLM_CFG_KEY(CTL_SOCKET, "ctl", "socket", STRING, "/run/slmd/ctl.sock", 0, 0,
	NULL, STATIC,
	"Path of the control socket that slmctl talks to.")
/* clang-format on */
