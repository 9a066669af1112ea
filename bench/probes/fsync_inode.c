/* fsync_inode.c: does asking for a file's metadata before each fdatasync
 * make the kernel write the file's inode too?
 *
 * Why: since Linux 6.13 (multigrain timestamps: ext4, XFS, btrfs, tmpfs), a
 * query of a file's times makes its next write stamp a fine-grained time,
 * which dirties the inode, and the fdatasync after it writes the inode's
 * block as well: one more request to the disk. The WAL sync thread
 * (host/src/store/wal_sync.rs) checks the WAL's identity before every sync,
 * so what it asks for matters. This loop writes 144 KiB, optionally asks
 * for metadata, then fdatasyncs, 1,000 times per mode, and prints the write
 * requests the disk completed per fdatasync (the whole device: run it on a
 * quiet machine).
 *
 *   cc -O2 -o /tmp/fsync_inode bench/probes/fsync_inode.c
 *   /tmp/fsync_inode /tmp/fsync_inode.bin vda    # a file on the disk to test, its device
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (36 * 4096)
#define CHUNKS 30
#define SYNCS 1000

static char device_stat[256];

/* Write requests the device has completed (field 5 of its stat file). */
static long disk_writes(void) {
  FILE *f = fopen(device_stat, "r");
  long v[5] = {0};
  if (!f) { perror(device_stat); exit(1); }
  for (int i = 0; i < 5; i++)
    if (fscanf(f, "%ld", &v[i]) != 1) { fprintf(stderr, "cannot read %s\n", device_stat); exit(1); }
  fclose(f);
  return v[4];
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: %s FILE DEVICE (e.g. vda)\n", argv[0]); return 2; }
  const char *path = argv[1];
  snprintf(device_stat, sizeof device_stat, "/sys/class/block/%s/stat", argv[2]);
  int fd = open(path, O_RDWR | O_CREAT, 0644);
  if (fd < 0) { perror(path); return 1; }
  static char buf[CHUNK];
  memset(buf, 'x', sizeof buf);
  /* Allocate the whole range first: the loop only overwrites, as the WAL does. */
  for (int i = 0; i < CHUNKS; i++) pwrite(fd, buf, CHUNK, (off_t)i * CHUNK);
  fdatasync(fd);
  const char *modes[] = {"nothing", "statx(STATX_INO)", "statx(STATX_BASIC_STATS)", "fstat"};
  for (int round = 0; round < 2; round++) {
    for (int mode = 0; mode < 4; mode++) {
      long before = disk_writes();
      off_t offset = 0;
      for (int i = 0; i < SYNCS; i++) {
        struct statx sx;
        struct stat st;
        if (pwrite(fd, buf, CHUNK, offset) != CHUNK) { perror("pwrite"); return 1; }
        offset = (offset + CHUNK) % ((off_t)CHUNKS * CHUNK);
        if (mode == 1) statx(AT_FDCWD, path, 0, STATX_INO, &sx);
        if (mode == 2) statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &sx);
        if (mode == 3) fstat(fd, &st);
        if (fdatasync(fd) != 0) { perror("fdatasync"); return 1; }
        struct timespec pause = {0, 300000}; /* 0.3 ms, about the router's gap between syncs */
        nanosleep(&pause, NULL);
      }
      printf("%-26s %.2f disk writes per fdatasync\n", modes[mode],
             (double)(disk_writes() - before) / SYNCS);
    }
  }
  close(fd);
  unlink(path);
  return 0;
}
