/*
 * Near-limit reference forwarder for the serial benchmark (scripts/bench/serial-ref.ts): the
 * least a pty → cannelloni TCP gateway can do. One epoll loop, no hub, no queues: read the pty,
 * cut Ampio adapter frames (2D D4 | L | id u32 BE | payload | checksum), encode each chunk's
 * frames as one cannelloni buffer and write it to every client that finished its hello. Loopback
 * only (127.0.0.1, ephemeral port). Prints "port N" once listening; exits when stdin closes.
 * A client whose socket does not take a whole write is counted ("short") and the rest dropped:
 * the reference is only run below the point where that happens.
 *
 *   gcc -O2 -o ref-forwarder ref-forwarder.c && ./ref-forwarder /path/to/pty
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 4096
static const char HELLO[] = "CANNELLONIv1";

struct client {
  int fd;
  int hello; /* bytes of the client's hello seen */
};

static struct client clients[MAX_CLIENTS];
static int nclients;
static unsigned long long shorts;

static void drop_client(int i) {
  close(clients[i].fd);
  clients[i] = clients[--nclients];
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: ref-forwarder PTY\n");
    return 2;
  }
  int pty = open(argv[1], O_RDWR | O_NOCTTY | O_NONBLOCK);
  if (pty < 0) { perror("open pty"); return 1; }
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1024) < 0) { perror("listen"); return 1; }
  socklen_t al = sizeof a;
  getsockname(ls, (struct sockaddr *)&a, &al);
  printf("port %d\n", ntohs(a.sin_port));
  fflush(stdout);

  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  ev.data.fd = ls; epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  ev.data.fd = pty; epoll_ctl(ep, EPOLL_CTL_ADD, pty, &ev);
  ev.data.fd = 0; epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);

  static unsigned char in[1 << 16], pend[1 << 16], out[1 << 17];
  int pendLen = 0;
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(ep, evs, 64, -1);
    if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
    for (int e = 0; e < n; e++) {
      int fd = evs[e].data.fd;
      if (fd == 0) {
        char b[256];
        ssize_t r = read(0, b, sizeof b);
        if (r <= 0) { fprintf(stderr, "ref-forwarder: %llu short writes\n", shorts); return 0; }
      } else if (fd == ls) {
        for (;;) {
          int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) break;
          if (nclients == MAX_CLIENTS) { close(c); continue; }
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          if (write(c, HELLO, 12) != 12) { close(c); continue; }
          clients[nclients].fd = c;
          clients[nclients].hello = 0;
          nclients++;
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
      } else if (fd == pty) {
        ssize_t r = read(pty, in, sizeof in);
        if (r <= 0) continue;
        if (pendLen + r > (ssize_t)sizeof pend) pendLen = 0;
        memcpy(pend + pendLen, in, r);
        pendLen += r;
        int p = 0, o = 0;
        while (pendLen - p >= 3) {
          if (pend[p] != 0x2d || pend[p + 1] != 0xd4) { p++; continue; }
          int len = pend[p + 2];
          if (len < 5 || len > 13) { p++; continue; }
          if (pendLen - p < 3 + len) break;
          unsigned sum = 0x2d + len;
          for (int i = 3; i < 2 + len; i++) sum += pend[p + i];
          if ((sum & 0xff) != pend[p + 2 + len]) { p++; continue; }
          int dlc = len - 5;
          out[o] = pend[p + 3] | 0x80; /* extended id: EFF flag */
          out[o + 1] = pend[p + 4];
          out[o + 2] = pend[p + 5];
          out[o + 3] = pend[p + 6];
          out[o + 4] = dlc;
          memcpy(out + o + 5, pend + p + 7, dlc);
          o += 5 + dlc;
          p += 3 + len;
        }
        memmove(pend, pend + p, pendLen - p);
        pendLen -= p;
        if (o == 0) continue;
        for (int i = 0; i < nclients; i++) {
          if (clients[i].hello < 12) continue;
          ssize_t w = write(clients[i].fd, out, o);
          if (w != o) shorts++;
        }
      } else {
        char b[4096];
        ssize_t r = read(fd, b, sizeof b);
        int i = 0;
        while (i < nclients && clients[i].fd != fd) i++;
        if (i == nclients) { close(fd); continue; }
        if (r <= 0) { drop_client(i); continue; }
        clients[i].hello += (int)r;
      }
    }
  }
}
