/* Rows of a batch split over POSIX threads, shared by the training kernels (gru_train.c,
 * train_head.c; docs/native.md). Plain C99 + pthreads, header only. */
#ifndef LPCNET_ROW_THREADS_H
#define LPCNET_ROW_THREADS_H

#include <pthread.h>
#include <stddef.h>

/** Most threads one call uses. */
#define ROW_THREADS_MAX 64

/** Threads for `rows` rows when `threads` are asked for: in [1, min(rows, ROW_THREADS_MAX)]. */
static inline int row_threads(int threads, int rows) {
  if (threads > rows) threads = rows;
  if (threads > ROW_THREADS_MAX) threads = ROW_THREADS_MAX;
  return threads < 1 ? 1 : threads;
}

/** First row of job i of n over `rows` rows (job i covers [row_start(i), row_start(i + 1))). */
static inline int row_start(int rows, int i, int n) { return (int)((long)rows * i / n); }

/** Run fn on jobs 0..n-1 (an array of n jobs of job_size bytes each): jobs 1..n-1 on their own
 * threads, job 0 on the calling thread, then join; a job whose thread could not start runs on
 * the calling thread after job 0. n <= ROW_THREADS_MAX. */
static inline void row_threads_run(void *(*fn)(void *), void *jobs, size_t job_size, int n) {
  pthread_t tid[ROW_THREADS_MAX];
  int started[ROW_THREADS_MAX] = {0};
  char *base = (char *)jobs;
  for (int i = 1; i < n; i++) started[i] = pthread_create(&tid[i], NULL, fn, base + (size_t)i * job_size) == 0;
  fn(base);
  for (int i = 1; i < n; i++) {
    if (started[i])
      pthread_join(tid[i], NULL);
    else
      fn(base + (size_t)i * job_size);
  }
}

#endif
