/*
 * Minimal SocketCAN receiver for scripts/bench/socketcan-vm.ts: the floor for receiving a flood.
 * One CAN_RAW socket, a 4 MiB receive buffer (SO_RCVBUFFORCE, as can-server asks), SO_RXQ_OVFL
 * for the kernel's drop counter, blocking recvmmsg in batches of 64. Counts frames until WANT
 * arrived or nothing arrived for 2 s; prints one JSON line: received, kernel drops, first → last
 * frame time and the rate over it.
 *
 *   cc -O2 -o ref-recvmmsg ref-recvmmsg.c && ./ref-recvmmsg vcan0 WANT
 */
#define _GNU_SOURCE
#include <linux/can.h>
#include <linux/can/raw.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif
#define BATCH 64

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: ref-recvmmsg IFACE WANT\n"); return 2; }
  long want = atol(argv[2]);
  int s = socket(PF_CAN, SOCK_RAW, CAN_RAW);
  if (s < 0) { perror("socket"); return 1; }
  int buf = 4 << 20, one = 1;
  if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0) setsockopt(s, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(s, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
  if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) { perror("SIOCGIFINDEX"); return 1; }
  struct sockaddr_can addr = {.can_family = AF_CAN, .can_ifindex = ifr.ifr_ifindex};
  if (bind(s, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 1; }
  struct timeval tv = {.tv_sec = 2};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  printf("ready\n");
  fflush(stdout);

  static struct can_frame frames[BATCH];
  static char ctrl[BATCH][CMSG_SPACE(sizeof(unsigned int))];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  long received = 0;
  unsigned int drops = 0;
  double first = 0, last = 0;
  while (received < want) {
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = &frames[i];
      iov[i].iov_len = sizeof frames[i];
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = ctrl[i];
      msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i];
    }
    int n = recvmmsg(s, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n <= 0) break; /* 2 s without a frame */
    double t = now();
    if (received == 0) first = t;
    last = t;
    received += n;
    for (int i = 0; i < n; i++) {
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) memcpy(&drops, CMSG_DATA(c), sizeof drops);
      }
    }
  }
  double span = last - first;
  printf("{\"received\":%ld,\"kernelDrops\":%u,\"seconds\":%.4f,\"framesPerSec\":%.0f}\n", received, drops, span, span > 0 ? received / span : 0);
  return 0;
}
