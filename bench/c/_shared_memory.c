/* Shared memory regions for shm.c and sem.c. */
#include "_shared_memory.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

void *shared_region(struct channel *channel) {
  char name[128];
  size_t size = SHM_DATA + channel->bytes;
  snprintf(name, sizeof name, "/ipckit-bench-c-%d-%d", (int)getpid(),
           channel->index);
  int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return NULL;
  shm_unlink(name);
  void *region = ftruncate(fd, (off_t)size) < 0
                     ? MAP_FAILED
                     : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  return region == MAP_FAILED ? NULL : region;
}
