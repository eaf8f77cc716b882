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
SLM_CFG_KEY(MODEL_CHAT_TEMPLATE, "model", "chat_template", STRING, "", 0, 0,
	NULL, STATIC,
	"Chat template by name (chatml, llama2, llama3, mistral-v7, phi3, "
	"gemma, zephyr, ...; see the engine's chat.h).  Empty: the model's "
	"own, recognised as llama.cpp does.")

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
SLM_CFG_KEY(ENGINE_SPIN_US, "engine", "spin_us", INT, "5000", 0, 10000000,
	NULL, STATIC,
	"Microseconds a pool thread spins for work before it sleeps (waking "
	"costs tens of microseconds): cover the gaps of a busy server.")

SLM_CFG_KEY(DP_KIND, "dataplane", "kind", ENUM, "uring", 0, 0, "uring|dpdk",
	STATIC,
	"Packet path of the RPC: uring (kernel UDP sockets driven by io_uring) "
	"or dpdk (kernel bypass on a NIC port).")
SLM_CFG_KEY(DP_LISTEN, "dataplane", "listen", STRING, "udp://127.0.0.1:7070",
	0, 0, NULL, STATIC,
	"Address the RPC listens on: udp://HOST:PORT, HOST an IPv4 address, a "
	"bracketed IPv6 address ([::] also takes IPv4) or a name.")
SLM_CFG_KEY(DP_RX_THREADS, "dataplane", "rx_threads", INT, "1", 1, 64, NULL,
	STATIC,
	"Receive threads, each with its own socket (SO_REUSEPORT spreads "
	"clients over them) and its own sessions.  With dataplane.kind = dpdk "
	"the lcores are the plan's dataplane cores (numa.dataplane_cores); "
	"a value other than 1 must match their number.")
SLM_CFG_KEY(DP_SPIN_US, "dataplane", "spin_us", INT, "50", 0, 10000000, NULL,
	STATIC,
	"Longest time (us) a dataplane thread polls after its last work before "
	"it sleeps; shortened while polling catches nothing.  Polling costs a "
	"core, sleeping costs wake-up latency.")
SLM_CFG_KEY(DP_RX_BUFFERS, "dataplane", "rx_buffers", INT, "1024", 16, 32768,
	NULL, STATIC,
	"Receive buffers per thread (2 KiB each), rounded up to a power of "
	"two.")
SLM_CFG_KEY(DP_SOCKET_BUFFER, "dataplane", "socket_buffer", SIZE, "4M", 0,
	1073741824, NULL, STATIC,
	"Kernel socket receive and send buffer of each socket; 0 keeps the "
	"system default.")
SLM_CFG_KEY(DP_MAX_REQUEST_BYTES, "dataplane", "max_request_bytes", SIZE,
	"64K", 1024, 8388608, NULL, STATIC,
	"Largest generate request (its encoded body, after reassembly from "
	"fragments); larger ones are refused with ETOOBIG.")
SLM_CFG_KEY(DP_KEY_FILE, "dataplane", "key_file", STRING, "", 0, 0, NULL,
	STATIC,
	"File of pre-shared keys ('ID HEX' lines, docs/protocol.md): every "
	"datagram must then carry a MAC made with one.  Readable only by the "
	"service user.  Empty: no MACs.")
SLM_CFG_KEY(DP_ALLOW, "dataplane", "allow", STRING, "", 0, 0, NULL, STATIC,
	"Client networks allowed to use the RPC, in CIDR form, separated by "
	"commas (10.0.0.0/8, ::1/128).  Empty: every address.")
SLM_CFG_KEY(DP_MAX_CLIENTS, "dataplane", "max_clients", INT, "4096", 1,
	1048576, NULL, STATIC,
	"Client connections a dataplane thread keeps state for.")
SLM_CFG_KEY(DP_MAX_INFLIGHT, "dataplane", "max_inflight", INT, "4096", 1,
	1048576, NULL, STATIC,
	"Requests in flight per dataplane thread (being reassembled or "
	"running); more are refused with EOVERLOAD.")
SLM_CFG_KEY(DP_CLIENT_MAX_INFLIGHT, "dataplane", "client_max_inflight", INT,
	"256", 1, 1024, NULL, STATIC,
	"Requests in flight per client connection, so one client cannot take "
	"every slot; more are refused with EOVERLOAD.")
SLM_CFG_KEY(DP_CLIENT_RATE, "dataplane", "client_rate", INT, "0", 0,
	100000000, NULL, STATIC,
	"Datagrams per second one client connection may send (a token bucket "
	"with a tenth of a second of burst); the excess is dropped.  0: no "
	"limit.")
SLM_CFG_KEY(DP_RETRANSMIT_BYTES, "dataplane", "retransmit_bytes", SIZE,
	"256K", 4096, 67108864, NULL, STATIC,
	"Token-stream bytes kept per request until the client acknowledges "
	"them, to answer its retransmission requests.")
SLM_CFG_KEY(DP_REASSEMBLY_BYTES, "dataplane", "reassembly_bytes", SIZE,
	"32M", 65536, 17179869184, NULL, STATIC,
	"Memory for requests still arriving in fragments, per dataplane "
	"thread; fragments beyond it are dropped until the client resends.")
SLM_CFG_KEY(DP_REASSEMBLY_TIMEOUT_MS, "dataplane", "reassembly_timeout_ms",
	INT, "2000", 10, 600000, NULL, STATIC,
	"An incomplete request is forgotten this long after its first "
	"fragment.")
SLM_CFG_KEY(DP_ABANDON_MS, "dataplane", "abandon_ms", INT, "5000", 100,
	3600000, NULL, STATIC,
	"A running request whose client has been silent this long is "
	"cancelled; a finished one is forgotten.  Clients send a keep-alive "
	"every second.")
SLM_CFG_KEY(DP_REPLAY_WINDOW_S, "dataplane", "replay_window_s", INT, "30", 1,
	3600, NULL, STATIC,
	"With keys: datagrams whose timestamp is further than this from the "
	"server's clock are dropped as replays.")
SLM_CFG_KEY(DP_CLIENT_IDLE_S, "dataplane", "client_idle_s", INT, "120", 2,
	86400, NULL, STATIC,
	"A client connection with no request silent this long is forgotten. "
	"Must exceed replay_window_s.")

SLM_CFG_KEY(ENGINE_BATCH, "engine", "batch", INT, "512", 1, 65536, NULL,
	STATIC,
	"Tokens per forward pass at most: a longer prompt is evaluated in "
	"chunks of this many tokens (llama.cpp's n_ubatch).  Sizes the "
	"forward pass's scratch memory.")
SLM_CFG_KEY(ENGINE_CTX, "engine", "ctx", INT, "0", 0, 16777216, NULL, STATIC,
	"Positions of one sequence at most (prompt and generated tokens); 0 = "
	"what the command needs, up to the model's training context.")

SLM_CFG_KEY(CACHE_KV_TYPE, "cache", "kv_type", ENUM, "f16", 0, 0,
	"f16|f32|q8_0", STATIC,
	"Element type of the KV cache: f16 (half the memory, llama.cpp's "
	"default), f32, or q8_0 (KV quantization: about half of f16's "
	"memory; needs head_dim a multiple of 32).")
SLM_CFG_KEY(CACHE_BLOCK_TOKENS, "cache", "block_tokens", INT, "16", 16, 4096,
	NULL, STATIC,
	"Positions per KV cache block (a multiple of 16): the unit of KV "
	"allocation and of prefix sharing.")
SLM_CFG_KEY(CACHE_KV_BYTES, "cache", "kv_bytes", SIZE, "256M", 0,
	1099511627776, NULL, STATIC,
	"Memory of each worker group's KV block pool, allocated once at "
	"start-up on the group's node; ignored when kv_tokens is set.")
SLM_CFG_KEY(CACHE_KV_TOKENS, "cache", "kv_tokens", INT, "0", 0, 1073741824,
	NULL, STATIC,
	"Size of each worker group's KV block pool in token positions (all "
	"sequences together, cached prefixes included); 0 = size it by "
	"kv_bytes.")
SLM_CFG_KEY(CACHE_PREFIX, "cache", "prefix", BOOL, "true", 0, 0, NULL,
	STATIC,
	"Keep a prompt-prefix cache: KV blocks of earlier prompts are reused "
	"by any request that starts with the same tokens.")
SLM_CFG_KEY(CACHE_NAMESPACES, "cache", "namespaces", BOOL, "false", 0, 0,
	NULL, STATIC,
	"Honour the per-request cache namespace: requests of different "
	"namespaces never share cached prefixes (multi-tenant boxes).  Off: "
	"every request shares one cache.")

SLM_CFG_KEY(SERVE_MAX_RUNNING, "serve", "max_running", INT, "64", 1, 4096,
	NULL, STATIC,
	"Sequences a worker group runs at once (decoded together in each "
	"forward pass); at most engine.batch.")
SLM_CFG_KEY(SERVE_MAX_QUEUE, "serve", "max_queue", INT, "1024", 1, 1048576,
	NULL, STATIC,
	"Requests waiting for a worker group beyond those running; more are "
	"refused with EOVERLOAD.")
SLM_CFG_KEY(SERVE_BATCH_TOKENS, "serve", "batch_tokens", INT, "0", 0, 65536,
	NULL, STATIC,
	"Token budget of one forward pass: one decode token per running "
	"sequence, then chunks of prompts; 0 = engine.batch.")

SLM_CFG_KEY(DPDK_PORT, "dpdk", "port", STRING, "", 0, 0, NULL, STATIC,
	"NIC port of the DPDK dataplane: a PCI address bound to vfio-pci "
	"(0000:03:00.0) or a virtual device (net_af_xdp0,iface=eth1; "
	"net_af_packet0,iface=eth1; net_tap0,iface=slm0).  Its IPv4 address "
	"and UDP port are dataplane.listen's.  Empty: no NIC port (memif "
	"only).")
SLM_CFG_KEY(DPDK_EAL_ARGS, "dpdk", "eal_args", STRING, "", 0, 0, NULL,
	STATIC,
	"More EAL arguments, separated by spaces (-d DRIVER.so, --socket-mem "
	"1024, --iova-mode va, ...).  Memory options given here replace "
	"slmd's own choice (dpdk.hugepages, dpdk.memory).")
SLM_CFG_KEY(DPDK_HUGEPAGES, "dpdk", "hugepages", ENUM, "auto", 0, 0,
	"auto|yes|no", STATIC,
	"Packet memory on reserved huge pages (EAL --in-memory) or on plain "
	"pages (--no-huge); auto uses huge pages when some are free.")
SLM_CFG_KEY(DPDK_MEMORY, "dpdk", "memory", SIZE, "512M", 67108864,
	68719476736.0, NULL, STATIC,
	"Memory EAL reserves when it runs without huge pages (-m).")
SLM_CFG_KEY(DPDK_MBUFS, "dpdk", "mbufs", INT, "0", 0, 4194303, NULL,
	STATIC,
	"Packet buffers per NUMA node that has dataplane cores; 0 sizes the "
	"pool from the queues and descriptors.")
SLM_CFG_KEY(DPDK_RX_DESC, "dpdk", "rx_desc", INT, "1024", 64, 16384, NULL,
	STATIC,
	"Receive descriptors per queue of the NIC port.")
SLM_CFG_KEY(DPDK_TX_DESC, "dpdk", "tx_desc", INT, "1024", 64, 16384, NULL,
	STATIC,
	"Transmit descriptors per queue of the NIC port.")
SLM_CFG_KEY(DPDK_OFFLOADS, "dpdk", "offloads", BOOL, "true", 0, 0, NULL,
	STATIC,
	"Let the port compute and check IPv4 and UDP checksums when it can; "
	"false (or a port without them): software checksums.")
SLM_CFG_KEY(DPDK_RX_INTERRUPTS, "dpdk", "rx_interrupts", BOOL, "true", 0,
	0, NULL, STATIC,
	"An idle lcore sleeps until a receive interrupt when all its ports "
	"have them; otherwise it naps (dpdk.idle_sleep_us).")
SLM_CFG_KEY(DPDK_IDLE_SLEEP_US, "dpdk", "idle_sleep_us", INT, "200", 1,
	100000, NULL, STATIC,
	"Longest nap between polls of an idle lcore without receive "
	"interrupts (naps grow from 10 us to this): what the first packet "
	"after a quiet spell may wait.")
SLM_CFG_KEY(DPDK_LINK_WAIT_MS, "dpdk", "link_wait_ms", INT, "5000", 0,
	600000, NULL, STATIC,
	"How long start-up waits for the NIC link before it warns and serves "
	"anyway (the link is watched and logged when it changes).")
SLM_CFG_KEY(DPDK_MEMIF_SOCKET, "dpdk", "memif_socket", STRING, "", 0, 0,
	NULL, STATIC,
	"Path of the memif socket local clients connect to "
	"(memif:///PATH): shared-memory links, no kernel on the way.  The "
	"directory decides who may connect.  Empty: no memif.")
SLM_CFG_KEY(DPDK_MEMIF_LINKS, "dpdk", "memif_links", INT, "4", 1, 255,
	NULL, STATIC,
	"memif interfaces on the socket: how many local clients may be "
	"connected at once.")

SLM_CFG_KEY(CTL_SOCKET, "ctl", "socket", STRING, "/run/slmd/ctl.sock", 0, 0,
	NULL, STATIC,
	"Path of the control socket that slmctl talks to.")
SLM_CFG_KEY(CTL_MODE, "ctl", "mode", ENUM, "0660", 0, 0, "0600|0660|0666",
	STATIC,
	"Permissions of the control socket: 0600 (slmd's user only), 0660 "
	"(and the members of ctl.group) or 0666 (anyone may connect; the "
	"peer check still refuses who is not allowed).")
SLM_CFG_KEY(CTL_GROUP, "ctl", "group", STRING, "", 0, 0, NULL, STATIC,
	"Group of the control socket, a name or a number; its members may "
	"use slmctl.  Empty: slmd's own group.")
SLM_CFG_KEY(CTL_ALLOW_UIDS, "ctl", "allow_uids", STRING, "", 0, 0, NULL,
	STATIC,
	"More users allowed on the control socket, comma-separated names or "
	"numbers.  Root and slmd's own user always are.")
SLM_CFG_KEY(CTL_ALLOW_GIDS, "ctl", "allow_gids", STRING, "", 0, 0, NULL,
	STATIC,
	"More groups whose members (primary or supplementary group) are "
	"allowed, comma-separated names or numbers.  Members of ctl.group "
	"always are.")
SLM_CFG_KEY(CTL_MAX_LINE, "ctl", "max_line", SIZE, "64K", 1024, 16777216,
	NULL, RUNTIME,
	"Longest request line in bytes; a longer one gets an ETOOBIG error, "
	"is skipped, and the connection goes on.")
SLM_CFG_KEY(CTL_MAX_CLIENTS, "ctl", "max_clients", INT, "32", 1, 4096, NULL,
	RUNTIME,
	"Clients connected at once; one more gets an EOVERLOAD error and is "
	"disconnected.")
SLM_CFG_KEY(METRICS_LISTEN, "metrics", "listen", STRING, "", 0, 0, NULL,
	STATIC,
	"Address of the Prometheus page (GET /metrics) and the health check "
	"(GET /health), HOST:PORT such as 127.0.0.1:9464 or [::1]:9464.  "
	"Empty: off.")
SLM_CFG_KEY(PERF_EVENTS, "perf", "events", BOOL, "true", 0, 0, NULL, STATIC,
	"Kernel counters for every slmd thread (perf_event_open): task clock, "
	"context switches, page faults, and where the CPU has a PMU cycles, "
	"instructions, cache and branch misses.")
SLM_CFG_KEY(NUMA_TOPOLOGY, "numa", "topology", STRING, "", 0, 0, NULL, STATIC,
	"Machine to plan for: empty = this one; synthetic:\"DESC\" (hwloc "
	"synthetic, e.g. package:2 numa:1 core:8 pu:2) or an hwloc XML file, "
	"for planning only (no pinning).")
SLM_CFG_KEY(NUMA_GROUPS, "numa", "groups", STRING, "auto", 0, 0, NULL, STATIC,
	"Worker groups: auto or node (one per NUMA node), llc (per last-level "
	"cache), package (per socket), or CPU sets split by '/', e.g. "
	"0-7/8-15.")
SLM_CFG_KEY(NUMA_DATAPLANE_CORES, "numa", "dataplane_cores", STRING, "auto",
	0, 0, NULL, STATIC,
	"Dataplane threads: auto (one; own core from 4 cores up, else shares a "
	"worker core), a count N of own cores (0 = one thread, shared), or "
	"cpus:LIST.")
SLM_CFG_KEY(NUMA_DATAPLANE_NODE, "numa", "dataplane_node", INT, "-1", -1,
	4095, NULL, STATIC,
	"NUMA node whose cores run the dataplane (the NIC's node); -1 = the "
	"node of the first worker group.")
SLM_CFG_KEY(NUMA_CTL_CORE, "numa", "ctl_core", STRING, "auto", 0, 0, NULL,
	STATIC,
	"CPU of the control thread: auto (the spare hardware thread of the "
	"first dataplane core, or that core), none (not pinned), or a CPU.")
SLM_CFG_KEY(NUMA_ALLOW_SMT_SIBLINGS, "numa", "allow_smt_siblings", BOOL,
	"false", 0, 0, NULL, STATIC,
	"Run busy threads on every hardware thread of a core; off: one per "
	"core, the SMT siblings stay idle.")
SLM_CFG_KEY(NUMA_WEIGHTS, "numa", "weights", ENUM, "auto", 0, 0,
	"auto|replicate|interleave|single", STATIC,
	"Model weights: a copy per node (replicate), one copy spread over the "
	"nodes (interleave) or on one node (single); auto = replicate if it "
	"fits, else interleave.")
SLM_CFG_KEY(NUMA_MEM_RESERVE, "numa", "mem_reserve", SIZE, "512M", 0,
	1125899906842624.0, NULL, STATIC,
	"Memory left free on each node with a worker group when checking that "
	"the weights and KV pools fit.")
SLM_CFG_KEY(NUMA_AFFINITY_THRESHOLD, "numa", "affinity_threshold", INT,
	"2048", 0, 1099511627776.0, NULL, RUNTIME,
	"Prefix affinity holds until the group with the cached prefix has "
	"this many tokens (queued + running) more than the least loaded "
	"group.")
SLM_CFG_KEY(NUMA_AFFINITY_MIN_PREFIX, "numa", "affinity_min_prefix", INT,
	"32", 0, 1048576, NULL, RUNTIME,
	"Prefix affinity counts only when the group's cached prefix is at "
	"least this many tokens longer than the least loaded group's.")

SLM_CFG_KEY(DAEMON_DRAIN_TIMEOUT_MS, "daemon", "drain_timeout_ms", INT,
	"30000", 0, 3600000, NULL, RUNTIME,
	"On SIGTERM or slmctl drain, how long in-flight requests may take "
	"to finish before slmd stops anyway (milliseconds).")
SLM_CFG_KEY(DAEMON_HEALTH_INTERVAL_MS, "daemon", "health_interval_ms", INT,
	"1000", 10, 600000, NULL, STATIC,
	"How often every component's progress is checked; the systemd "
	"watchdog is fed only while all make progress (milliseconds).")
/* clang-format on */
