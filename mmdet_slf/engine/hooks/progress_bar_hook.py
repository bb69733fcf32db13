# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Console progress bars with ETA for training, validation and testing."""
import sys
import time
from typing import Dict, Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmdet.registry import HOOKS


class LineProgress:
    """A progress bar for a file or a pipe: one full line (tqdm's format,
    with rate and ETA) every ``interval`` seconds and at the end, instead of
    carriage returns that pile up into one endless line.

    Args:
        total (int): Steps to do.
        desc (str): Name written first.
        unit (str): Name of a step.
        file (TextIO): Stream written to.
        initial (int): Steps already done (a resumed run). Defaults to 0.
        interval (float): Least seconds between two lines. Defaults to 10.
        clock (Callable[[], float]): Seconds. Defaults to
            ``time.perf_counter``.
    """

    def __init__(self, total: int, desc: str, unit: str, file,
                 initial: int = 0, interval: float = 10.0,
                 clock=time.perf_counter) -> None:
        self.total, self.desc, self.unit, self.file = total, desc, unit, file
        self.initial = self.n = initial
        self.interval = interval
        self.clock = clock
        self.start = self.last_line = clock()
        self.postfix = ''

    def set_postfix(self, values: Dict[str, str], refresh: bool = False
                    ) -> None:
        self.postfix = ', '.join(f'{k}={v}' for k, v in values.items())

    def update(self, steps: int = 1) -> None:
        self.n += steps
        if self.clock() - self.last_line >= self.interval and \
                self.n < self.total:
            self._line()

    def close(self) -> None:
        self._line()

    def _line(self) -> None:
        from tqdm import tqdm
        now = self.clock()
        self.last_line = now
        elapsed = now - self.start
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else None
        text = tqdm.format_meter(
            self.n, self.total, elapsed, ncols=100, prefix=self.desc,
            unit=self.unit, rate=rate, postfix=self.postfix or None,
            initial=self.initial)
        self.file.write(text + '\n')
        self.file.flush()


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """Progress bars with ETA on the console: training (iterations, with
    the smoothed loss and the last validation metric), validation and
    testing (batches). Each validation also prints one line with its
    metric.

    On a terminal the bars are tqdm's, redrawn in place; in a file or a
    pipe a bar is a line every ``line_interval`` seconds (see
    :class:`LineProgress`) and validation shows only its metric line. The
    hook only draws: ``LoggerHook``'s per-iteration lines still go to the
    log file. Pair it with a console log level of WARNING for a console a
    person can read. Only the main process draws.

    Args:
        metric_key (str): Validation metric shown, e.g. 'pascal_voc/mAP'.
            Defaults to 'pascal_voc/mAP'.
        loss_window (int): Iterations the shown loss is averaged over.
            Defaults to 20.
        min_interval (float): Seconds between redraws on a terminal.
            Defaults to 0.5.
        line_interval (float): Seconds between lines in a file or a pipe.
            Defaults to 30.
        file (TextIO, optional): Stream to draw on. Defaults to None,
            ``sys.stderr`` at the time a bar starts.
    """
    # After RuntimeInfoHook has put the loss into the message hub.
    priority = 'VERY_LOW'

    def __init__(self,
                 metric_key: str = 'pascal_voc/mAP',
                 loss_window: int = 20,
                 min_interval: float = 0.5,
                 line_interval: float = 30.0,
                 file=None) -> None:
        if loss_window < 1:
            raise ValueError(f'loss_window must be >= 1, got {loss_window}')
        if min_interval <= 0 or line_interval <= 0:
            raise ValueError('min_interval and line_interval must be > 0, '
                             f'got {min_interval} and {line_interval}')
        self.metric_key = metric_key
        self.loss_window = loss_window
        self.min_interval = min_interval
        self.line_interval = line_interval
        self.file = file
        self._bars = {}
        self._last_metric: Optional[float] = None

    def _stream(self):
        return self.file or sys.stderr

    def _open(self, mode: str, total: int, initial: int = 0,
              unit: str = 'batch', transient: bool = False) -> None:
        """Start the bar of ``mode``; a ``transient`` one is erased when
        done, so it is drawn on a terminal only."""
        self._close(mode)
        if not is_main_process():
            return
        stream = self._stream()
        if not (hasattr(stream, 'isatty') and stream.isatty()):
            if not transient:
                self._bars[mode] = LineProgress(
                    total, mode, unit, stream, initial,
                    interval=self.line_interval)
            return
        from tqdm import tqdm
        self._bars[mode] = tqdm(
            total=total,
            initial=initial,
            desc=mode,
            unit=unit,
            file=stream,
            leave=not transient,
            dynamic_ncols=True,
            mininterval=self.min_interval)

    def _update(self, mode: str) -> None:
        bar = self._bars.get(mode)
        if bar is not None:
            bar.update(1)

    def _close(self, mode: str) -> None:
        bar = self._bars.pop(mode, None)
        if bar is not None:
            bar.close()

    def _write(self, text: str) -> None:
        if is_main_process():
            from tqdm import tqdm
            tqdm.write(text, file=self._stream())

    def before_train(self, runner) -> None:
        self._open('train', runner.max_iters, runner.iter, unit='it')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        bar = self._bars.get('train')
        if bar is not None:
            self._set_train_postfix(runner)
            bar.update(1)

    def _set_train_postfix(self, runner) -> None:
        """Smoothed loss and the last validation metric."""
        bar = self._bars.get('train')
        if bar is None:
            return
        postfix = {}
        history = runner.message_hub.log_scalars.get('train/loss')
        if history is not None:
            postfix['loss'] = f'{history.mean(self.loss_window):.3f}'
        if self._last_metric is not None:
            postfix[self.metric_key.split('/')[-1]] = \
                f'{self._last_metric:.3f}'
        bar.set_postfix(postfix, refresh=False)

    def after_train(self, runner) -> None:
        self._close('train')

    def before_val_epoch(self, runner) -> None:
        self._open('val', len(runner.val_dataloader), transient=True)

    def after_val_iter(self,
                       runner,
                       batch_idx: int,
                       data_batch=None,
                       outputs: Optional[Sequence] = None) -> None:
        self._update('val')

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._close('val')
        if metrics and self.metric_key in metrics:
            self._last_metric = float(metrics[self.metric_key])
            self._write(f'val at iteration {runner.iter}: '
                        f'{self.metric_key} {self._last_metric:.4f}')
            self._set_train_postfix(runner)

    def before_test_epoch(self, runner) -> None:
        self._open('test', len(runner.test_dataloader))

    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch=None,
                        outputs: Optional[Sequence] = None) -> None:
        self._update('test')

    def after_test_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        self._close('test')
