/**
 * `promise`, or a rejection with `onTimeout()`'s error once `ms` have passed (the timer does not keep the
 * process alive and is cleared when the promise settles). The work behind `promise` is not cancelled.
 */
export function withTimeout<T> (promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms)
    timer.unref()
    promise.then(
      (value) => { clearTimeout(timer); resolve(value) },
      (err) => { clearTimeout(timer); reject(err) }
    )
  })
}
