/*
 * tcptwin DUT adapter for lwIP (docs/dut-protocol.md), built against Debian's liblwip
 * (2.1.3, the GNU/Hurd-oriented build: NO_SYS=0, LWIP_TCPIP_CORE_LOCKING=1, BSD socket
 * API on, lwip_poll on, lwip_select off).
 *
 * One process, three threads:
 *   - main: reads one JSON request a line from stdin, makes the lwIP socket call
 *     (lwip_socket, lwip_connect, ...) and writes one JSON reply line;
 *   - lwIP's tcpip thread (started by tcpip_init): runs the stack and its timers, so the
 *     stack keeps answering the peer between requests, during `wait` and after the last
 *     step until `finish`;
 *   - rx: reads frames from an AF_PACKET socket on the DUT veth and hands them to lwIP
 *     through netif->input (= tcpip_input).
 * Frames lwIP sends leave through netif->linkoutput, which writes them to the same
 * AF_PACKET socket.
 *
 * Why no translation of sockaddrs, option numbers or errno: Debian builds lwIP with
 * LWIP_SOCKET_EXTERNAL_HEADERS (posix/sockets.h includes glibc's <sys/socket.h>,
 * <netinet/in.h>, <netinet/tcp.h>, <poll.h>, <fcntl.h>) and LWIP_ERRNO_STDINCLUDE (glibc's
 * <errno.h>). So lwIP itself reads glibc's struct sockaddr_in (u16 sa_family, no sin_len),
 * compares option names against Linux's numbers (SOL_SOCKET=1, SO_ERROR=4, TCP_NODELAY=1,
 * ...), returns Linux's POLL* bits and O_NONBLOCK, and stores Linux errno numbers in the
 * calling thread's errno. The raw bytes tcptwin sends are therefore exactly what an lwIP
 * application on this system passes, and errno only needs its name (strerrorname_np).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lwip/init.h"
#include "lwip/tcpip.h"
#include "lwip/netif.h"
#include "lwip/etharp.h"
#include "lwip/ethip6.h"
#include "lwip/priv/nd6_priv.h"
#include "lwip/pbuf.h"
#include "lwip/sockets.h"
#include "netif/ethernet.h"

/* ---------------------------------------------------------------- replies (stdout) */

/* The protocol's own stdout. fd 1 itself is pointed at stderr, because lwIP's
 * LWIP_PLATFORM_ASSERT / LWIP_PLATFORM_DIAG printf() to stdout, and nothing but replies
 * may go there. */
static FILE *out;

static void reply_raw(const char *json)
{
    fputs(json, out);
    fputc('\n', out);
    fflush(out);
}

static void reply_ret(long long ret)
{
    fprintf(out, "{\"ret\":%lld}\n", ret);
    fflush(out);
}

/* An adapter failure (not the socket's): logged by tcptwin as EIO with the text. */
static void reply_error(const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fputs("{\"error\":\"", out);
    for (const char *c = text; *c; c++) {
        if (*c == '"' || *c == '\\')
            fputc('\\', out);
        if ((unsigned char)*c >= 0x20)
            fputc(*c, out);
    }
    fputs("\"}\n", out);
    fflush(out);
}

/* A call that returned -1: lwIP's errno by its Linux name. lwIP's err_to_errno() maps
 * ERR_IF to -1, which is no errno at all; that (never expected) case is reported as the
 * adapter's error, not invented into a name. */
static void reply_errno(int e)
{
    const char *name = e > 0 ? strerrorname_np(e) : NULL;
    if (name)
        fprintf(out, "{\"errno\":\"%s\"}\n", name), fflush(out);
    else
        reply_error("lwIP set errno %d, which has no Linux name", e);
}

/* The usual ending: a value, or -1 and errno. Read errno before anything else runs. */
static void reply_call(long long ret)
{
    int e = errno;
    if (ret < 0)
        reply_errno(e);
    else
        reply_ret(ret);
}

/* ---------------------------------------------------------------- requests (stdin) */

/* Requests are flat JSON objects of strings, numbers, booleans and null (the schema's
 * Request), so a small scanner is enough: it records where each key's value is. */
struct field {
    const char *key, *val;
    size_t klen, vlen;
    int is_str;
};
#define MAX_FIELDS 16
static struct field fields[MAX_FIELDS];
static int nfields;

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* A string's body (escapes left as they are: none of our values carries one). */
static const char *scan_string(const char *p, const char **start, size_t *len)
{
    if (*p != '"')
        return NULL;
    *start = ++p;
    while (*p && *p != '"')
        p += (*p == '\\' && p[1]) ? 2 : 1;
    if (*p != '"')
        return NULL;
    *len = (size_t)(p - *start);
    return p + 1;
}

static int parse_request(const char *p)
{
    nfields = 0;
    p = skip_ws(p);
    if (*p++ != '{')
        return -1;
    p = skip_ws(p);
    if (*p == '}')
        return 0;
    for (;;) {
        struct field f = {0};
        p = scan_string(skip_ws(p), &f.key, &f.klen);
        if (!p)
            return -1;
        p = skip_ws(p);
        if (*p++ != ':')
            return -1;
        p = skip_ws(p);
        if (*p == '"') {
            f.is_str = 1;
            p = scan_string(p, &f.val, &f.vlen);
            if (!p)
                return -1;
        } else {
            f.val = p;
            while (*p && *p != ',' && *p != '}' && *p != ' ')
                p++;
            f.vlen = (size_t)(p - f.val);
        }
        if (nfields < MAX_FIELDS)
            fields[nfields++] = f;
        p = skip_ws(p);
        if (*p == ',') {
            p++;
            continue;
        }
        return *p == '}' ? 0 : -1;
    }
}

static const struct field *get(const char *key)
{
    for (int i = 0; i < nfields; i++)
        if (fields[i].klen == strlen(key) && !memcmp(fields[i].key, key, fields[i].klen))
            return &fields[i];
    return NULL;
}

static int is(const struct field *f, const char *s)
{
    return f && f->vlen == strlen(s) && !memcmp(f->val, s, f->vlen);
}

static long long get_int(const char *key, long long dflt)
{
    const struct field *f = get(key);
    return (f && !f->is_str && f->vlen && !is(f, "null")) ? strtoll(f->val, NULL, 10) : dflt;
}

/* A string value copied out (NUL-terminated); NULL when absent or null. */
static char *get_str(const char *key)
{
    const struct field *f = get(key);
    if (!f || !f->is_str)
        return NULL;
    return strndup(f->val, f->vlen);
}

/* Lowercase hex → bytes, into a buffer of at least `min` zeroed bytes (malloc'd, so
 * aligned as lwIP's IS_SOCK_ADDR_ALIGNED wants). -1 on bad hex. */
static long unhex(const char *key, unsigned char **buf, size_t min)
{
    const struct field *f = get(key);
    size_t n = f && f->is_str ? f->vlen / 2 : 0;
    if (f && f->is_str && f->vlen % 2)
        return -1;
    *buf = calloc(1, n > min ? n : min);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(f->val + 2 * i, "%2x", &v) != 1)
            return -1;
        (*buf)[i] = (unsigned char)v;
    }
    return (long)n;
}

/* ---------------------------------------------------------------- the netif */

static int packet_fd = -1;   /* AF_PACKET socket on the DUT veth */
static struct netif dut_netif;
static pthread_mutex_t tx_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char tx_frame[65535];   /* p->tot_len is a u16_t */

/* netif->linkoutput: lwIP hands a whole Ethernet frame (etharp_output / ethernet_output
 * built the header). Copied flat with pbuf_copy_partial and written with one send(). */
static err_t dut_linkoutput(struct netif *netif, struct pbuf *p)
{
    (void)netif;
    pthread_mutex_lock(&tx_lock);
    u16_t len = pbuf_copy_partial(p, tx_frame, p->tot_len, 0);
    ssize_t n = send(packet_fd, tx_frame, len, 0);
    pthread_mutex_unlock(&tx_lock);
    if (n < 0) {
        fprintf(stderr, "lwip adapter: send on the packet socket: %s\n", strerror(errno));
        return ERR_IF;
    }
    return ERR_OK;
}

struct link_params {
    unsigned char mac[6];
    unsigned mtu;
};

/* netif_add's init callback: what lwIP's ethernetif template sets up. */
static err_t dut_netif_init(struct netif *netif)
{
    struct link_params *lp = netif->state;
    netif->name[0] = 'e';
    netif->name[1] = 't';
    netif->output = etharp_output;   /* IPv4 → ARP resolution → linkoutput */
    netif->output_ip6 = ethip6_output; /* IPv6 → neighbour discovery → linkoutput */
    netif->linkoutput = dut_linkoutput;
    netif->mtu = (u16_t)lp->mtu;
    netif->hwaddr_len = ETH_HWADDR_LEN;
    memcpy(netif->hwaddr, lp->mac, ETH_HWADDR_LEN);
    /* Ethernet, and ARP once the netif is up (see do_setup). No NETIF_FLAG_IGMP /
     * NETIF_FLAG_MLD6: lwIP sends no multicast reports the kernel DUT does not send. */
    netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHERNET;
    return ERR_OK;
}

/* The rx thread: every frame the veth receives goes to lwIP, through netif->input
 * (tcpip_input, which queues it for the tcpip thread). The packet socket also sees our
 * own outgoing frames (PACKET_OUTGOING): those are skipped. */
static void *rx_thread(void *arg)
{
    (void)arg;
    static unsigned char frame[65535];   /* a pbuf's length is a u16_t */
    for (;;) {
        struct sockaddr_ll from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(packet_fd, frame, sizeof frame, 0, (struct sockaddr *)&from,
                             &fromlen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "lwip adapter: recv on the packet socket: %s\n", strerror(errno));
            return NULL;
        }
        if (from.sll_pkttype == PACKET_OUTGOING || n < 14)
            continue;
        /* PBUF_RAM, one contiguous pbuf, and not PBUF_POOL: in Debian's liblwip0 2.1.3
         * the PBUF_POOL pool holds 616-byte elements (memp_pools[MEMP_PBUF_POOL]->size,
         * 592 bytes of payload) while pbuf_alloc fills up to PBUF_POOL_BUFSIZE = 1536
         * bytes into each, so a received frame longer than ~590 bytes overruns the heap. */
        struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)n, PBUF_RAM);
        if (!p) {
            fprintf(stderr, "lwip adapter: pbuf_alloc(%zd) failed, frame dropped\n", n);
            continue;
        }
        pbuf_take(p, frame, (u16_t)n);
        if (dut_netif.input(p, &dut_netif) != ERR_OK)
            pbuf_free(p);
    }
}

static sys_sem_t tcpip_ready;

static void tcpip_init_done(void *arg)
{
    (void)arg;
    sys_sem_signal(&tcpip_ready);
}

/* An IPv6 address for the netif (an inet6 case), set up as quietly as the kernel DUT's:
 * the kernel gets its address without DAD, no link-local one, no router solicitation
 * and no MLD report in the capture. So the address goes into slot 0 already PREFERRED
 * (netif_ip6_addr_set_state from nothing to PREFERRED: no DAD, whose tentative state
 * nd6_tmr would probe; no MLD join of its solicited-node group either, as the netif has
 * no NETIF_FLAG_MLD6), rs_count is zeroed after netif_set_up (no router solicitation),
 * and the on-link prefix goes straight into nd6's prefix list (where a router
 * advertisement would put it; lwIP compares prefixes as /64 whatever prefix_len says),
 * so the peer is resolved by neighbour solicitation, not looked for behind a router.
 * Must hold the core lock. */
static int ip6_setup(const char *addr)
{
    ip6_addr_t ip6;
    if (!ip6addr_aton(addr, &ip6))
        return -1;
    netif_ip6_addr_set(&dut_netif, 0, &ip6);
    netif_ip6_addr_set_state(&dut_netif, 0, IP6_ADDR_PREFERRED);
    ip6_addr_copy(prefix_list[0].prefix, ip6);
    prefix_list[0].netif = &dut_netif;
    prefix_list[0].invalidation_timer = 0xffffffffu;
    return 0;
}

/* setup: the AF_PACKET socket, lwIP's tcpip thread, and a netif with the case's MAC,
 * MTU and address (IPv4, or IPv6 in an inet6 case: see ip6_setup). No gateway and no
 * default netif: the peer is on-link, and an off-link destination gets what lwIP's
 * ip4_route gives when nothing matches. */
static void do_setup(void)
{
    static struct link_params lp;
    char *ifname = get_str("interface"), *mac = get_str("mac"), *addr = get_str("address");
    long long mtu = get_int("mtu", 1500), prefix = get_int("prefix_len", 0);
    unsigned m[6];

    if (!ifname || !mac ||
        sscanf(mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6 ||
        prefix < 0 || prefix > 128 || mtu < 68 || mtu > 65535) {
        reply_error("setup: bad interface, mac, mtu or prefix_len");
        return;
    }
    for (int i = 0; i < 6; i++)
        lp.mac[i] = (unsigned char)m[i];
    lp.mtu = (unsigned)mtu;

    unsigned ifindex = if_nametoindex(ifname);
    if (!ifindex) {
        reply_error("setup: no interface %s: %s", ifname, strerror(errno));
        return;
    }
    packet_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = (int)ifindex};
    if (packet_fd < 0 || bind(packet_fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        reply_error("setup: AF_PACKET socket on %s: %s", ifname, strerror(errno));
        return;
    }

    /* tcpip_init: lwip_init() and the tcpip thread; wait until it runs. */
    if (sys_sem_new(&tcpip_ready, 0) != ERR_OK) {
        reply_error("setup: sys_sem_new failed");
        return;
    }
    tcpip_init(tcpip_init_done, NULL);
    sys_sem_wait(&tcpip_ready);

    char *peer = get_str("peer");
    int ipv6 = peer && strchr(peer, ':');   /* the case's network is IPv6 */
    free(peer);
    ip4_addr_t ip, mask, gw;
    ip4_addr_set_zero(&ip);
    ip4_addr_set_zero(&mask);
    ip4_addr_set_zero(&gw);
    if (addr && !ipv6) {
        if (prefix > 32) {
            reply_error("setup: prefix_len %lld for an IPv4 address", prefix);
            return;
        }
        if (!ip4addr_aton(addr, &ip)) {
            reply_error("setup: bad address %s", addr);
            return;
        }
        ip4_addr_set_u32(&mask, prefix ? lwip_htonl(0xffffffffu << (32 - prefix)) : 0);
    }

    /* netif_add / netif_set_up / netif_set_link_up must hold the core lock
     * (LWIP_TCPIP_CORE_LOCKING: LWIP_ASSERT_CORE_LOCKED checks it). */
    LOCK_TCPIP_CORE();
    if (!netif_add(&dut_netif, &ip, &mask, &gw, &lp, dut_netif_init, tcpip_input)) {
        UNLOCK_TCPIP_CORE();
        reply_error("setup: netif_add failed");
        return;
    }
    if (addr && ipv6 && ip6_setup(addr) < 0) {
        UNLOCK_TCPIP_CORE();
        reply_error("setup: bad address %s", addr);
        return;
    }
    /* netif_set_up / netif_set_link_up announce the address with a gratuitous ARP
     * (netif_issue_reports → etharp_gratuitous) when NETIF_FLAG_ETHARP is set. That is
     * the interface coming up, not the connect under test, and the kernel DUT's interface
     * came up before the capture began; so the netif comes up without the flag and gets
     * it right after: from then on ARP (requests, replies, the cache) is lwIP's own. */
    netif_set_up(&dut_netif);
    netif_set_link_up(&dut_netif);
    dut_netif.flags |= NETIF_FLAG_ETHARP;
    dut_netif.rs_count = 0;
    UNLOCK_TCPIP_CORE();

    pthread_t rx;
    if (pthread_create(&rx, NULL, rx_thread, NULL) != 0) {
        reply_error("setup: pthread_create failed");
        return;
    }
    reply_ret(0);
}

/* ---------------------------------------------------------------- the socket calls */

static int fd = -1;   /* the case's socket, an lwIP descriptor */

static void do_socket(void)
{
    /* lwip_socket: a NETCONN_TCP netconn behind an lwIP descriptor (LWIP_SOCKET_OFFSET 1). */
    char *family = get_str("family");   /* absent: AF_INET */
    fd = lwip_socket(family && !strcmp(family, "AF_INET6") ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    free(family);
    reply_call(fd);
}

static void do_nonblocking(void)
{
    /* As an application would: F_GETFL, flip O_NONBLOCK, F_SETFL (lwip_fcntl). */
    int on = is(get("on"), "true");
    int flags = lwip_fcntl(fd, F_GETFL, 0);
    if (flags < 0) {
        reply_call(flags);
        return;
    }
    flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    reply_call(lwip_fcntl(fd, F_SETFL, flags));
}

static void do_setsockopt(void)
{
    unsigned char *value;
    long len = unhex("value", &value, 8);
    if (len < 0) {
        free(value);
        reply_error("setsockopt: value is not hex");
        return;
    }
    /* lwip_setsockopt: level/name are Linux's numbers, as lwIP was compiled with them. */
    int rc = lwip_setsockopt(fd, (int)get_int("level", 0), (int)get_int("name", 0), value,
                             (socklen_t)len);
    reply_call(rc);
    free(value);
}

static void do_getsockopt(void)
{
    int value = 0;
    socklen_t len = sizeof value;
    /* lwip_getsockopt of an int option */
    int rc = lwip_getsockopt(fd, (int)get_int("level", 0), (int)get_int("name", 0), &value,
                             &len);
    int e = errno;
    if (rc < 0) {
        reply_errno(e);
        return;
    }
    fprintf(out, "{\"ret\":%d,\"value\":%d}\n", rc, value);
    fflush(out);
}

/* bind and connect: the raw sockaddr bytes, padded with zeros to a sockaddr_storage behind
 * the pointer as the kernel DUT passes them, with the case's length. lwIP itself checks
 * family, length (sizeof(struct sockaddr_in) or _in6) and alignment, and answers a bad one
 * with err_to_errno(ERR_ARG) = EIO, a family mismatch with ERR_VAL = EINVAL. */
static void do_addr_call(int (*call)(int, const struct sockaddr *, socklen_t))
{
    unsigned char *addr;
    long len = unhex("addr", &addr, sizeof(struct sockaddr_storage));
    if (len < 0) {
        free(addr);
        reply_error("addr is not hex");
        return;
    }
    int rc = call(fd, (const struct sockaddr *)addr, (socklen_t)len);
    reply_call(rc);
    free(addr);
}

static void do_poll(void)
{
    /* lwip_poll: events and revents are Linux's POLL* bits (glibc's <poll.h>). */
    struct pollfd pfd = {.fd = fd, .events = (short)get_int("events", 0)};
    int rc = lwip_poll(&pfd, 1, (int)get_int("timeout_ms", 0));
    int e = errno;
    if (rc < 0) {
        reply_errno(e);
        return;
    }
    reply_ret(rc == 0 ? 0 : (unsigned short)pfd.revents);
}

static void do_send(void)
{
    unsigned char *data;
    long len = unhex("data", &data, 1);
    if (len < 0) {
        free(data);
        reply_error("send: data is not hex");
        return;
    }
    /* lwip_send → netconn_write_partly; MSG_NOSIGNAL passed as the kernel DUT passes it
     * (lwIP raises no SIGPIPE either way). */
    ssize_t n = lwip_send(fd, data, (size_t)len, MSG_NOSIGNAL);
    reply_call(n);
    free(data);
}

static void do_recv(void)
{
    long long max = get_int("max", 0);
    unsigned char *buf = malloc(max > 0 ? (size_t)max : 1);
    ssize_t n = lwip_recv(fd, buf, (size_t)max, 0);
    reply_call(n);
    free(buf);
}

static void do_close(void)
{
    /* lwip_close → netconn_delete → tcp_close (or a RST with unread data), after which
     * the tcpip thread goes on with the FIN exchange by itself. */
    int rc = lwip_close(fd);
    reply_call(rc);
    fd = -1;
}

static void do_wait(void)
{
    /* Nothing to drive: the tcpip thread runs the stack and its timers by itself. */
    long long ms = get_int("ms", 0);
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    reply_ret(0);
}

static const char HELLO[] =
    "{\"protocol\":1,\"name\":\"lwip\",\"version\":\"" LWIP_VERSION_STRING "\","
    "\"address\":\"interface\","
    "\"steps\":[\"socket\",\"nonblocking\",\"setsockopt\",\"getsockopt\",\"bind\",\"connect\","
    "\"poll\",\"send\",\"recv\",\"close\",\"wait_ms\"],"
    /* The options lwip_setsockopt/lwip_getsockopt implement for a TCP socket in this
     * build, among those tcptwin's cases use. Not here (lwIP answers ENOPROTOOPT):
     * TCP_MAXSEG, TCP_SYNCNT, TCP_WINDOW_CLAMP, TCP_QUICKACK, TCP_USER_TIMEOUT,
     * TCP_FASTOPEN_CONNECT, TCP_RTO_MAX_MS, SO_SNDBUF, IP_OPTIONS, IP_BIND_ADDRESS_NO_PORT. */
    "\"sockopts\":[\"TCP_NODELAY\",\"SO_RCVBUF\",\"SO_SNDTIMEO\",\"SO_ERROR\",\"IP_TOS\","
    "\"IP_TTL\"],"
    /* LWIP_IPV6 is on in Debian's build (lwipopts.h): AF_INET6 sockets, ethip6_output. */
    "\"families\":[\"AF_INET\",\"AF_INET6\"]}";

int main(void)
{
    /* Replies go to a private copy of stdout; fd 1 becomes stderr (see `out`). */
    int proto = dup(1);
    if (proto < 0 || dup2(2, 1) < 0 || !(out = fdopen(proto, "w"))) {
        perror("lwip adapter: stdout");
        return 1;
    }
    setvbuf(stdout, NULL, _IONBF, 0);

    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0) {
        if (parse_request(line) < 0) {
            reply_error("request is not a flat JSON object");
            continue;
        }
        const struct field *op = get("op");
        if (is(op, "hello"))
            reply_raw(HELLO);
        else if (is(op, "finish"))
            break;
        else if (is(op, "setup"))
            do_setup();
        else if (is(op, "socket"))
            do_socket();
        else if (is(op, "nonblocking"))
            do_nonblocking();
        else if (is(op, "setsockopt"))
            do_setsockopt();
        else if (is(op, "getsockopt"))
            do_getsockopt();
        else if (is(op, "bind"))
            do_addr_call(lwip_bind);
        else if (is(op, "connect"))
            do_addr_call(lwip_connect);
        else if (is(op, "poll"))
            do_poll();
        else if (is(op, "send"))
            do_send();
        else if (is(op, "recv"))
            do_recv();
        else if (is(op, "close"))
            do_close();
        else if (is(op, "wait"))
            do_wait();
        else
            reply_error("unknown op");
    }
    /* finish (or stdin closed): leave at once, the stack's threads with the process. */
    fflush(out);
    _exit(0);
}
