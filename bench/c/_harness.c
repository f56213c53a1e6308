/*
 * The measuring program around one mechanism (see _harness.h).
 *
 *   <program> --waiting=busy|blocking --mode=MODE --bytes=N [options]
 *
 * Modes:
 *   round-trips  one pair; --warm-up untimed round trips, then --round-trips
 *                timed ones: prints every round trip's time, in µs.
 *   one-way      one pair; the server acknowledges each message with one
 *                byte, the client keeps up to WINDOW messages unacknowledged;
 *                one untimed burst, then --samples bursts of --count
 *                messages: prints each burst's rate, in MiB/s.
 *   concurrent   --pairs pairs at once, each running round trips for
 *                --seconds after --warm-up: prints the pooled median and p99
 *                (from a histogram with 1/64 relative precision).
 *   idle         one pair; after --warm-up round trips the client sends
 *                nothing for --seconds while the server waits to receive.
 *
 * Every mode prints one JSON line on stdout, with `cpuNanos`: the CPU time
 * (user + system) of every process of the measurement during the timed part
 * (read from the kernel's process CPU clocks, nanosecond resolution), and
 * `peerCpuNanos`, the servers' share of it; `operations` round trips or
 * messages, `bytes` moved one way, and `seconds` of wall time. A message
 * larger than the mechanism can carry prints {"unsupported": "..."}; a
 * failure prints {"error": "..."} and exits with status 1.
 *
 * --cpus=one pins every client and server to the first CPU this program may
 * use, --cpus=two pins clients to the first and servers to the second (on
 * a virtual machine a wake-up on the same CPU is a context switch, one on
 * another CPU may first have to wake that virtual CPU from idle); without
 * it the scheduler places them.
 *
 * Processes: this one forks a client per pair, and each client forks its
 * server, so the client can read its server's CPU clock. Every child dies
 * with its parent (PR_SET_PDEATHSIG), and this program with an alarm after
 * --timeout seconds, so an aborted run leaves nothing behind.
 */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#include "_harness.h"

#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/** Most messages a one-way client leaves unacknowledged. */
#define WINDOW 8
/** Histogram buckets: exact below 128 ns, then 64 per power of two. */
#define BUCKETS 2304

enum mode { ROUND_TRIPS, ONE_WAY, CONCURRENT, IDLE };

static struct {
  int busy;
  enum mode mode;
  size_t bytes;
  long round_trips, warm_up, samples, count, pairs;
  double seconds;
  const char *scratch;
  unsigned timeout;
  int cpus; /* 0: the scheduler's choice; 1: one CPU; 2: two CPUs */
  int cpu[2]; /* the CPUs the client and the server are pinned to */
} options = {
    .round_trips = 1000,
    .warm_up = 100,
    .samples = 3,
    .count = 8,
    .pairs = 1,
    .seconds = 1,
    .scratch = "/tmp",
    .timeout = 600,
};

/** What a pair's client reports, in memory shared with this process. */
struct pair_result {
  uint64_t operations, bytes, cpu_nanos, peer_cpu_nanos;
  double seconds;
  uint32_t histogram[BUCKETS];
};

struct shared {
  atomic_int ready, go, failed;
  char error[512];
  float *samples; /* pair 0's samples (round-trips and one-way modes) */
  long sample_count;
  struct pair_result pairs[];
};

static struct shared *shared;

void fail(const char *what) {
  char message[400];
  snprintf(message, sizeof message, "%s %s: %s", MECHANISM.name, what,
           strerror(errno));
  if (shared && !atomic_exchange(&shared->failed, 1)) {
    snprintf(shared->error, sizeof shared->error, "%s", message);
  } else if (!shared) {
    printf("{\"error\":\"%s\"}\n", message);
  }
  _exit(1);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t nanos(struct timespec t) {
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/** The CPU time so far of this process and of its server. */
static void cpu_times(pid_t server, uint64_t *mine, uint64_t *theirs) {
  struct timespec t;
  clockid_t clock;
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) < 0) fail("clock_gettime");
  *mine = nanos(t);
  int error = clock_getcpuclockid(server, &clock);
  if (error) {
    errno = error;
    fail("clock_getcpuclockid");
  }
  if (clock_gettime(clock, &t) < 0) fail("clock_gettime(server)");
  *theirs = nanos(t);
}

static unsigned bucket_of(uint64_t ns) {
  if (ns < 128) return (unsigned)ns;
  unsigned e = 63u - (unsigned)__builtin_clzll(ns);
  unsigned b = 128u + (e - 7u) * 64u + (unsigned)((ns >> (e - 6u)) - 64u);
  return b < BUCKETS ? b : BUCKETS - 1;
}

static double bucket_micros(unsigned b) {
  if (b < 128) return b / 1000.0;
  unsigned e = 7u + (b - 128u) / 64u, m = 64u + (b - 128u) % 64u;
  return ((double)m + 0.5) * (double)(1ull << (e - 6u)) / 1000.0;
}

/** Pins the calling process to one CPU, if --cpus asked for it. */
static void pin(enum side side) {
  if (!options.cpus) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(options.cpu[side], &set);
  if (sched_setaffinity(0, sizeof set, &set) < 0) fail("sched_setaffinity");
}

/** Finds the CPUs for --cpus; 0, or -1 when there are too few. */
static int choose_cpus(void) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) < 0) fail("sched_getaffinity");
  int found = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && found < options.cpus; cpu++) {
    if (CPU_ISSET(cpu, &allowed)) options.cpu[found++] = cpu;
  }
  if (found < options.cpus) return -1;
  if (options.cpus == 1) options.cpu[SERVER] = options.cpu[CLIENT];
  return 0;
}

static void round_trip(struct channel *channel, char *message, char *reply) {
  if (MECHANISM.send(channel, CLIENT, message, options.bytes) < 0) fail("send");
  if (MECHANISM.receive(channel, CLIENT, reply, options.bytes) < 0) {
    fail("receive");
  }
}

/** A burst of `count` one-way messages, WINDOW at most unacknowledged. */
static void burst(struct channel *channel, char *message, long count) {
  char ack;
  long acked = 0;
  for (long i = 0; i < count; i++) {
    if (MECHANISM.send(channel, CLIENT, message, options.bytes) < 0) {
      fail("send");
    }
    if (i + 1 - acked >= WINDOW) {
      if (MECHANISM.receive(channel, CLIENT, &ack, 1) < 0) fail("receive ack");
      acked++;
    }
  }
  for (; acked < count; acked++) {
    if (MECHANISM.receive(channel, CLIENT, &ack, 1) < 0) fail("receive ack");
  }
}

static void serve(struct channel *channel) {
  char *buffer = malloc(options.bytes);
  char ack = 1;
  if (!buffer) fail("malloc");
  memset(buffer, 0, options.bytes);
  for (;;) {
    if (MECHANISM.receive(channel, SERVER, buffer, options.bytes) < 0) {
      fail("receive (server)");
    }
    int sent = options.mode == ONE_WAY
                   ? MECHANISM.send(channel, SERVER, &ack, 1)
                   : MECHANISM.send(channel, SERVER, buffer, options.bytes);
    if (sent < 0) fail("send (server)");
  }
}

static void run_pair(int index) {
  struct pair_result *result = &shared->pairs[index];
  struct channel channel = {
      .busy = options.busy,
      .bytes = options.bytes,
      .index = index,
      .scratch = options.scratch,
      .fd = {{-1, -1}, {-1, -1}},
  };
  if (MECHANISM.prepare(&channel) < 0) fail("prepare");
  pid_t server = fork();
  if (server < 0) fail("fork");
  if (server == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    pin(SERVER);
    if (MECHANISM.attach(&channel, SERVER) < 0) fail("attach (server)");
    serve(&channel);
  }
  pin(CLIENT);
  if (MECHANISM.attach(&channel, CLIENT) < 0) fail("attach");
  char *message = malloc(options.bytes), *reply = malloc(options.bytes);
  if (!message || !reply) fail("malloc");
  memset(message, 0x5a, options.bytes);

  if (options.mode == ONE_WAY) {
    burst(&channel, message, options.count);
  } else {
    for (long i = 0; i < options.warm_up; i++) {
      round_trip(&channel, message, reply);
    }
  }
  atomic_fetch_add(&shared->ready, 1);
  while (!atomic_load(&shared->go)) usleep(50);

  uint64_t mine0, theirs0, mine1, theirs1;
  cpu_times(server, &mine0, &theirs0);
  double start = now();
  switch (options.mode) {
    case ROUND_TRIPS:
      for (long i = 0; i < options.round_trips; i++) {
        double t = now();
        round_trip(&channel, message, reply);
        shared->samples[i] = (float)((now() - t) * 1e6);
      }
      result->operations = (uint64_t)options.round_trips;
      result->bytes = options.bytes * (uint64_t)options.round_trips;
      break;
    case ONE_WAY:
      for (long i = 0; i < options.samples; i++) {
        double t = now();
        burst(&channel, message, options.count);
        double mib = (double)options.count * (double)options.bytes / 1048576.0;
        shared->samples[i] = (float)(mib / (now() - t));
      }
      result->operations = (uint64_t)(options.samples * options.count);
      result->bytes = result->operations * options.bytes;
      break;
    case CONCURRENT: {
      double stop = start + options.seconds;
      uint64_t done = 0;
      for (double t = start; t < stop; done++) {
        round_trip(&channel, message, reply);
        double after = now();
        result->histogram[bucket_of((uint64_t)((after - t) * 1e9))]++;
        t = after;
      }
      result->operations = done;
      result->bytes = done * options.bytes;
      break;
    }
    case IDLE: {
      struct timespec pause = {
          .tv_sec = (time_t)options.seconds,
          .tv_nsec = (long)((options.seconds - (time_t)options.seconds) * 1e9),
      };
      while (nanosleep(&pause, &pause) < 0 && errno == EINTR) {
      }
      break;
    }
  }
  result->seconds = now() - start;
  cpu_times(server, &mine1, &theirs1);
  result->cpu_nanos = (mine1 - mine0) + (theirs1 - theirs0);
  result->peer_cpu_nanos = theirs1 - theirs0;

  kill(server, SIGKILL);
  waitpid(server, NULL, 0);
  MECHANISM.release(&channel, CLIENT);
  _exit(0);
}

static void parse(int argc, char **argv) {
  static const struct option long_options[] = {
      {"waiting", required_argument, 0, 'w'},
      {"mode", required_argument, 0, 'm'},
      {"bytes", required_argument, 0, 'b'},
      {"round-trips", required_argument, 0, 'r'},
      {"warm-up", required_argument, 0, 'u'},
      {"samples", required_argument, 0, 's'},
      {"count", required_argument, 0, 'c'},
      {"pairs", required_argument, 0, 'p'},
      {"seconds", required_argument, 0, 't'},
      {"scratch", required_argument, 0, 'd'},
      {"timeout", required_argument, 0, 'T'},
      {"cpus", required_argument, 0, 'C'},
      {0, 0, 0, 0},
  };
  int option;
  while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
    switch (option) {
      case 'w':
        options.busy = strcmp(optarg, "busy") == 0;
        if (!options.busy && strcmp(optarg, "blocking") != 0) goto usage;
        break;
      case 'm':
        if (strcmp(optarg, "round-trips") == 0) options.mode = ROUND_TRIPS;
        else if (strcmp(optarg, "one-way") == 0) options.mode = ONE_WAY;
        else if (strcmp(optarg, "concurrent") == 0) options.mode = CONCURRENT;
        else if (strcmp(optarg, "idle") == 0) options.mode = IDLE;
        else goto usage;
        break;
      case 'b': options.bytes = strtoul(optarg, NULL, 10); break;
      case 'r': options.round_trips = atol(optarg); break;
      case 'u': options.warm_up = atol(optarg); break;
      case 's': options.samples = atol(optarg); break;
      case 'c': options.count = atol(optarg); break;
      case 'p': options.pairs = atol(optarg); break;
      case 't': options.seconds = atof(optarg); break;
      case 'd': options.scratch = optarg; break;
      case 'T': options.timeout = (unsigned)atoi(optarg); break;
      case 'C':
        if (strcmp(optarg, "one") == 0) options.cpus = 1;
        else if (strcmp(optarg, "two") == 0) options.cpus = 2;
        else goto usage;
        break;
      default: goto usage;
    }
  }
  if (options.bytes == 0 || options.pairs < 1 || options.round_trips < 1 ||
      options.samples < 1 || options.count < 1 || options.seconds <= 0 ||
      (options.mode != CONCURRENT && options.pairs != 1)) {
    goto usage;
  }
  return;
usage:
  printf("{\"error\":\"usage: --waiting=busy|blocking "
         "--mode=round-trips|one-way|concurrent|idle --bytes=N [--round-trips=N "
         "--warm-up=N --samples=N --count=N --pairs=N --seconds=S "
         "--scratch=DIR --timeout=S --cpus=one|two]\"}\n");
  exit(2);
}

static void print_summary(void) {
  uint64_t operations = 0, bytes = 0, cpu = 0, peer_cpu = 0;
  double seconds = 0;
  for (long p = 0; p < options.pairs; p++) {
    struct pair_result *r = &shared->pairs[p];
    operations += r->operations;
    bytes += r->bytes;
    cpu += r->cpu_nanos;
    peer_cpu += r->peer_cpu_nanos;
    if (r->seconds > seconds) seconds = r->seconds;
  }
  printf("{");
  if (options.mode == CONCURRENT) {
    static uint64_t total[BUCKETS];
    uint64_t count = 0;
    for (long p = 0; p < options.pairs; p++) {
      for (unsigned b = 0; b < BUCKETS; b++) {
        total[b] += shared->pairs[p].histogram[b];
        count += shared->pairs[p].histogram[b];
      }
    }
    /* Nearest rank, as bench/_stats.ts does with raw samples. */
    double ranks[2] = {0.5, 0.99}, found[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
      uint64_t wanted = (uint64_t)((double)count * ranks[k] + 0.999999), seen = 0;
      for (unsigned b = 0; b < BUCKETS && count; b++) {
        seen += total[b];
        if (seen >= wanted) {
          found[k] = bucket_micros(b);
          break;
        }
      }
    }
    printf("\"summary\":{\"median\":%.4f,\"p99\":%.4f,\"count\":%llu},",
           found[0], found[1], (unsigned long long)count);
  } else if (options.mode != IDLE) {
    printf("\"samples\":[");
    for (long i = 0; i < shared->sample_count; i++) {
      printf("%s%.4g", i ? "," : "", shared->samples[i]);
    }
    printf("],");
  }
  printf("\"cpuNanos\":%llu,\"peerCpuNanos\":%llu,\"operations\":%llu,"
         "\"bytes\":%llu,\"seconds\":%.6f}\n",
         (unsigned long long)cpu, (unsigned long long)peer_cpu,
         (unsigned long long)operations, (unsigned long long)bytes, seconds);
}

int main(int argc, char **argv) {
  parse(argc, argv);
  const char *missing = MECHANISM.unavailable ? MECHANISM.unavailable() : NULL;
  if (missing) {
    printf("{\"unsupported\":\"%s\"}\n", missing);
    return 0;
  }
  if (MECHANISM.max_bytes && options.bytes > MECHANISM.max_bytes) {
    printf("{\"unsupported\":\"%s\"}\n", MECHANISM.why_not);
    return 0;
  }
  if (options.cpus && choose_cpus() < 0) {
    printf("{\"unsupported\":\"fewer than %d CPUs to pin to\"}\n", options.cpus);
    return 0;
  }
  if (options.mode == ONE_WAY && MECHANISM.no_one_way) {
    printf("{\"unsupported\":\"%s\"}\n", MECHANISM.no_one_way);
    return 0;
  }
  alarm(options.timeout);
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);

  long sample_count = options.mode == ROUND_TRIPS ? options.round_trips
                      : options.mode == ONE_WAY   ? options.samples
                                                  : 0;
  size_t head = sizeof(struct shared) +
                (size_t)options.pairs * sizeof(struct pair_result);
  size_t size = head + (size_t)sample_count * sizeof(float);
  shared = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                -1, 0);
  if (shared == MAP_FAILED) {
    shared = NULL;
    fail("mmap");
  }
  shared->samples = (float *)((char *)shared + head);
  shared->sample_count = sample_count;

  pid_t *clients = calloc((size_t)options.pairs, sizeof(pid_t));
  if (!clients) fail("calloc");
  for (long p = 0; p < options.pairs; p++) {
    clients[p] = fork();
    if (clients[p] < 0) fail("fork");
    if (clients[p] == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      run_pair((int)p);
    }
  }
  /*
   * Start every pair at once, after every pair has warmed up; then wait for
   * them all. A pair that fails (or whose server fails) stops the others:
   * killing a client kills its server too (PR_SET_PDEATHSIG).
   */
  long exited = 0;
  int ok = 1;
  while (exited < options.pairs) {
    int status;
    pid_t gone = waitpid(-1, &status, WNOHANG);
    if (gone > 0) {
      exited++;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ok = 0;
    }
    if (!ok || atomic_load(&shared->failed)) {
      ok = 0;
      for (long p = 0; p < options.pairs; p++) kill(clients[p], SIGKILL);
      while (waitpid(-1, NULL, 0) > 0) {
      }
      break;
    }
    if (atomic_load(&shared->ready) == options.pairs) {
      atomic_store(&shared->go, 1);
    }
    if (gone <= 0) usleep(atomic_load(&shared->go) ? 10000 : 1000);
  }
  if (!ok) {
    printf("{\"error\":\"%s\"}\n",
           shared->error[0] ? shared->error : "a pair ended abnormally");
    return 1;
  }
  print_summary();
  return 0;
}
