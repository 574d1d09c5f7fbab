//! The ready queue: which steps may start, in pipeline order.
//!
//! A step is ready once every one of its inputs has been produced. Ready
//! steps start in pipeline order (their position in the graph's topological
//! order), so that a run's steps start the same way every time. A step whose
//! cached input turns out to be lost sends that input's producer back to the
//! queue and waits for it again; when the producer finishes, only the steps
//! that waited for it are released, the others already have its output. Once
//! the queue is stopped (after the first failure) no further step starts.

use std::collections::BTreeSet;

/// The steps waiting for their inputs and those ready to start.
#[derive(Debug)]
pub(super) struct ReadyQueue {
    /// Each step's place in pipeline order.
    position: Vec<usize>,
    /// How many of each step's inputs are not yet there.
    waiting: Vec<usize>,
    /// The steps reading each step's outputs, once per input they read.
    consumers: Vec<Vec<usize>>,
    /// For a step running again because its output was lost: the steps
    /// waiting for it.
    blocked_on: Vec<Vec<usize>>,
    /// Ready steps, by (position, step).
    ready: BTreeSet<(usize, usize)>,
    /// Set by the first failure: nothing starts after it.
    stopped: bool,
}

impl ReadyQueue {
    /// A queue for steps whose inputs are `edges` (for each step, the
    /// `(producer, output)` of each input), started in `order` (each step
    /// once, producers before consumers). The steps without inputs are ready.
    pub(super) fn new(order: &[usize], edges: &[Vec<(usize, usize)>]) -> Self {
        let n = edges.len();
        let mut position = vec![0; n];
        for (pos, &step) in order.iter().enumerate() {
            position[step] = pos;
        }
        let mut consumers = vec![Vec::new(); n];
        for (step, inputs) in edges.iter().enumerate() {
            for &(producer, _) in inputs {
                consumers[producer].push(step);
            }
        }
        let waiting: Vec<usize> = edges.iter().map(Vec::len).collect();
        let ready = (0..n)
            .filter(|&step| waiting[step] == 0)
            .map(|step| (position[step], step))
            .collect();
        ReadyQueue {
            position,
            waiting,
            consumers,
            blocked_on: vec![Vec::new(); n],
            ready,
            stopped: false,
        }
    }

    /// The next step to start: the first ready one in pipeline order, none
    /// once the queue is stopped.
    pub(super) fn pop(&mut self) -> Option<usize> {
        if self.stopped {
            return None;
        }
        self.ready.pop_first().map(|(_, step)| step)
    }

    /// Take `step` out of the ready steps to start it with another (a
    /// sibling that trains together with it); whether it was ready.
    pub(super) fn take(&mut self, step: usize) -> bool {
        !self.stopped && self.ready.remove(&(self.position[step], step))
    }

    /// `step` has produced its outputs: the steps waiting on it whose inputs
    /// are now all there become ready. A step that ran again because its
    /// output was lost releases only the steps that were waiting for it.
    pub(super) fn finished(&mut self, step: usize) {
        let released = if self.blocked_on[step].is_empty() {
            self.consumers[step].clone()
        } else {
            std::mem::take(&mut self.blocked_on[step])
        };
        for consumer in released {
            self.waiting[consumer] -= 1;
            if self.waiting[consumer] == 0 {
                self.ready.insert((self.position[consumer], consumer));
            }
        }
    }

    /// `consumer` could not load an input from `producer`: the producer runs
    /// again, and the consumer waits until it has. A producer already sent
    /// back for another consumer (queued or running) runs once for both.
    pub(super) fn input_lost(&mut self, consumer: usize, producer: usize) {
        if self.blocked_on[producer].is_empty() {
            self.ready.insert((self.position[producer], producer));
        }
        self.blocked_on[producer].push(consumer);
        self.waiting[consumer] += 1;
    }

    /// Start nothing more (a step failed); steps already running finish.
    pub(super) fn stop(&mut self) {
        self.stopped = true;
    }
}

#[cfg(test)]
mod tests {
    use super::ReadyQueue;

    /// Every step that can start now, in the order they would.
    fn drain(queue: &mut ReadyQueue) -> Vec<usize> {
        std::iter::from_fn(|| queue.pop()).collect()
    }

    /// `a` (0) and `b` (1) are sources; `c` (2) joins them; `d` (3) reads `c`.
    fn diamond() -> ReadyQueue {
        let edges = vec![vec![], vec![], vec![(0, 0), (1, 0)], vec![(2, 0)]];
        ReadyQueue::new(&[0, 1, 2, 3], &edges)
    }

    #[test]
    fn two_consumers_losing_one_input_run_its_producer_again_once() {
        // `a` (0) feeds `b` (1) and `c` (2).
        let edges = vec![vec![], vec![(0, 0)], vec![(0, 0)]];
        let mut queue = ReadyQueue::new(&[0, 1, 2], &edges);
        assert_eq!(drain(&mut queue), [0]);
        queue.finished(0);
        assert_eq!(drain(&mut queue), [1, 2]);
        queue.input_lost(1, 0);
        assert_eq!(drain(&mut queue), [0], "a runs again");
        // While `a` runs again, `c` finds the same object lost.
        queue.input_lost(2, 0);
        assert_eq!(queue.pop(), None, "a is not queued a second time");
        queue.finished(0);
        assert_eq!(drain(&mut queue), [1, 2]);
        queue.finished(1);
        queue.finished(2);
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn a_ready_step_taken_to_start_with_another_does_not_start_again() {
        // `a` (0) feeds `b` (1), `c` (2) and `d` (3).
        let edges = vec![vec![], vec![(0, 0)], vec![(0, 0)], vec![(0, 0)]];
        let mut queue = ReadyQueue::new(&[0, 1, 2, 3], &edges);
        assert!(!queue.take(1), "b is not ready before a finishes");
        assert_eq!(drain(&mut queue), [0]);
        queue.finished(0);
        assert_eq!(queue.pop(), Some(1));
        assert!(queue.take(3), "d starts with b");
        assert!(!queue.take(3), "d was taken once");
        assert_eq!(drain(&mut queue), [2]);
        queue.stop();
        assert!(!queue.take(2), "nothing is taken once stopped");
    }

    #[test]
    fn a_step_is_ready_once_all_its_inputs_are_there() {
        let mut queue = diamond();
        assert_eq!(drain(&mut queue), [0, 1]);
        queue.finished(0);
        assert_eq!(
            drain(&mut queue),
            Vec::<usize>::new(),
            "c still waits for b"
        );
        queue.finished(1);
        assert_eq!(drain(&mut queue), [2]);
        queue.finished(2);
        assert_eq!(drain(&mut queue), [3]);
        queue.finished(3);
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn ready_steps_start_in_pipeline_order_not_by_index() {
        // Pipeline order: 2, 0, 1 (all sources), then 3 reading 0 and 4 reading 2.
        let edges = vec![vec![], vec![], vec![], vec![(0, 0)], vec![(2, 0)]];
        let mut queue = ReadyQueue::new(&[2, 0, 1, 4, 3], &edges);
        assert_eq!(drain(&mut queue), [2, 0, 1]);
        queue.finished(0);
        queue.finished(2);
        assert_eq!(drain(&mut queue), [4, 3]);
    }

    #[test]
    fn a_step_reading_two_outputs_of_one_producer_waits_for_both() {
        let edges = vec![vec![], vec![(0, 0), (0, 1)]];
        let mut queue = ReadyQueue::new(&[0, 1], &edges);
        assert_eq!(drain(&mut queue), [0]);
        queue.finished(0);
        assert_eq!(drain(&mut queue), [1]);
    }

    #[test]
    fn a_lost_input_sends_its_producer_back_and_requeues_the_consumer() {
        let mut queue = diamond();
        assert_eq!(drain(&mut queue), [0, 1]);
        queue.finished(0);
        queue.finished(1);
        assert_eq!(drain(&mut queue), [2]);
        // c finds b's cached output gone: b runs again, c waits for it.
        queue.input_lost(2, 1);
        assert_eq!(drain(&mut queue), [1]);
        queue.finished(1);
        assert_eq!(drain(&mut queue), [2], "c is requeued once b has run again");
        queue.finished(2);
        assert_eq!(drain(&mut queue), [3]);
    }

    #[test]
    fn a_rerun_producer_releases_only_the_steps_that_waited_for_it() {
        // 0 feeds 1 and 2.
        let edges = vec![vec![], vec![(0, 0)], vec![(0, 0)]];
        let mut queue = ReadyQueue::new(&[0, 1, 2], &edges);
        assert_eq!(drain(&mut queue), [0]);
        queue.finished(0);
        assert_eq!(drain(&mut queue), [1, 2]);
        // 2 has loaded its input and finishes; 1 finds it lost.
        queue.finished(2);
        queue.input_lost(1, 0);
        assert_eq!(drain(&mut queue), [0]);
        queue.finished(0);
        assert_eq!(
            drain(&mut queue),
            [1],
            "2 already had the output: not again"
        );
        queue.finished(1);
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn nothing_starts_after_the_first_failure() {
        // Sources 0 and 1; 2 reads 1.
        let edges = vec![vec![], vec![], vec![(1, 0)]];
        let mut queue = ReadyQueue::new(&[0, 1, 2], &edges);
        assert_eq!(queue.pop(), Some(0));
        // 0 fails while 1 is ready: 1 never starts.
        queue.stop();
        assert_eq!(queue.pop(), None);

        let mut queue = ReadyQueue::new(&[0, 1, 2], &edges);
        assert_eq!(drain(&mut queue), [0, 1]);
        // 0 fails while 1 runs: 1 still finishes, but 2, released by it,
        // does not start.
        queue.stop();
        queue.finished(1);
        assert_eq!(queue.pop(), None);
    }
}
