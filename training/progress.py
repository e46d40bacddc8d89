"""What a person watching training sees and does: the progress log, and stopping with a signal."""
import signal
import time

from utils import log

LOG_EVERY = 10
EARLY_LINES = (1, 3)  # the run's own steps also logged, so that the first line comes within seconds, not minutes


class ProgressLog:
    """After the run's first and third steps and every LOG_EVERY global steps: step, the loss and its weighted terms (which add up to it), seconds per step,
    images per second and time left; of several styles, the style trained and each style's latest weighted style
    loss (styles take turns, so with LOG_EVERY a multiple of their number the step's own would always be one)."""

    def __init__(self, last_step, batch_size, content_weight, styles, tv_weight):
        """styles: (name, style weight) of each style the network learns."""
        self.last_step, self.batch_size, self.styles = last_step, batch_size, styles
        self.content_weight, self.tv_weight = content_weight, tv_weight
        self.window_start, self.window_steps, self.steps_run = time.time(), 0, 0
        self.latest_style_loss = {}  # style index -> its weighted style loss at the last step that trained it
        log.info('the loss is content_weight x content + style_weight x style + tv_weight x tv; the lines below show '
                 'each term weighted (%g, %s, %g), so that they add up to it', content_weight,
                 '/'.join('%g' % weight for _, weight in styles), tv_weight)

    def step(self, step, values, skipped=0):
        self.window_steps += 1
        self.steps_run += 1
        index = int(values['style_index'])
        style_weight = self.styles[index][1]
        self.latest_style_loss[index] = style_weight * values['style']
        if step % LOG_EVERY and step != self.last_step and self.steps_run not in EARLY_LINES:
            return
        secs_per_step = (time.time() - self.window_start) / self.window_steps
        left = (self.last_step - step) * secs_per_step
        terms = [self.content_weight * values['content'], style_weight * values['style'], self.tv_weight * values['tv']]
        log.info('step %d/%d  loss %.4g = content %.4g + style %.4g + tv %.4g%s  %.3f s/step  %.1f img/s  %s left%s%s',
                 step, self.last_step, values['total'], *terms, self._styles_note(index), secs_per_step,
                 self.batch_size / secs_per_step, _duration(left),
                 '  (%d unreadable images skipped)' % skipped if skipped else '',
                 '  (the first step includes warming up)' if self.steps_run == 1 else '')
        self.window_start, self.window_steps = time.time(), 0

    def _styles_note(self, index):
        """' (style trained; latest style loss of each: name value, ...)' for several styles, else ''."""
        if len(self.styles) == 1:
            return ''
        latest = ', '.join('%s %.4g' % (name, self.latest_style_loss[i]) for i, (name, _) in enumerate(self.styles)
                           if i in self.latest_style_loss)
        return ' (%s; latest style loss of each: %s)' % (self.styles[index][0], latest)


def _duration(seconds):
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return '%d:%02d:%02d' % (hours, minutes, secs)


class StopRequest:
    """SIGINT and SIGTERM: the first asks the loop to save and stop after the current step; a second one, handled
    by the system's default action, ends the process at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.received = None
        self.previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def _handle(self, signum, _frame):
        self.received = signal.Signals(signum).name
        for other in self.SIGNALS:
            signal.signal(other, signal.SIG_DFL)
        log.info('%s received: saving a checkpoint after this step (send it again to quit at once)', self.received)

    def __exit__(self, *exc_info):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
