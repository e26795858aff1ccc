# -*- coding: utf-8 -*-
# Runner agent's event callback: one JSON object per line for every Ansible callback, carrying
# the structured result and the exact text Ansible's default callback would have printed.
# GNU General Public License v3.0+ applies to the parts that extend Ansible's callback API.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = '''
    name: runner_events
    type: stdout
    short_description: JSON lines for the Runner agent, with the default callback's text
    description:
      - Writes one JSON object per line for every callback to the file descriptor named by
        RUNNER_EVENTS_FD (or appends to the file named by RUNNER_EVENTS_FILE).
      - Each object carries event, ts, play, task, host, stdout (the text the default callback
        would print for that callback) and data (the structured result).
      - A first SIGINT asks for a graceful stop, the playbook ends before its next task starts;
        a second SIGINT interrupts at once.
      - Without RUNNER_EVENTS_FD or RUNNER_EVENTS_FILE it prints exactly like the default callback.
      - With RUNNER_LIFELINE_FD, a thread waits for end-of-file on that descriptor (the agent holds
        the only other end, so EOF means the agent is gone, even SIGKILLed) and then SIGKILLs the
        run's process group (and, with RUNNER_LIFELINE_UID naming its own unprivileged uid, every
        process of that uid).
    extends_documentation_fragment:
      - default_callback
      - result_format_callback
    requirements:
      - set as the stdout callback (ANSIBLE_STDOUT_CALLBACK=runner_events)
'''

import json
import errno
import os
import signal
import textwrap
import threading
import time
import traceback

from ansible.parsing.ajson import AnsibleJSONEncoder
from ansible.plugins.callback.default import CallbackModule as DefaultCallbackModule
from ansible.utils.display import Display
from ansible.vars.clean import module_response_deepcopy, strip_internal_keys


class _Encoder(AnsibleJSONEncoder):
    """Ansible's encoder (unsafe text, vault, dates) with a last resort for anything else."""

    def default(self, o):
        try:
            return super(_Encoder, self).default(o)
        except TypeError:
            return str(o)


class _Capture(object):
    """Stands in for Display while the default callback renders one event: keeps the text."""

    def __init__(self, real):
        self._real = real
        self.parts = []
        self.b_cowsay = None  # banners as stars, never cowsay
        self.columns = getattr(real, 'columns', None) or 79

    def __getattr__(self, name):
        return getattr(self._real, name)

    def display(self, msg, color=None, stderr=False, screen_only=False, log_only=False, newline=True):
        if log_only:
            return
        msg = u'%s' % (msg,)
        if newline and not msg.endswith(u'\n'):
            msg += u'\n'
        self.parts.append(msg)

    def banner(self, msg, color=None, cows=True):
        Display.banner(self, msg, color=color, cows=False)

    def warning(self, msg, formatted=False):
        if not formatted:
            new_msg = u'[WARNING]: %s' % msg
            new_msg = u'\n'.join(textwrap.wrap(new_msg, self.columns)) + u'\n'
        else:
            new_msg = u'\n[WARNING]: \n%s' % msg
        warns = getattr(self._real, '_warns', {})
        if new_msg not in warns:
            warns[new_msg] = 1
            self.display(new_msg)

    def deprecated(self, msg, version=None, removed=False, date=None, collection_name=None):
        text = self._real.get_deprecation_message(msg, version=version, removed=removed, date=date,
                                                  collection_name=collection_name)
        self.display(text.strip())

    def text(self):
        return u''.join(self.parts)


_lifeline_started = False


def _lifeline_watch(fd, sweep_uid):
    """Blocks until the agent's end of the lifeline closes, then kills the run (never returns then)."""
    try:
        os.set_blocking(fd, True)
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                return  # not a lifeline after all (closed, not ours): leave the run alone
            if not data:
                break  # EOF: the agent is gone
    except Exception:
        return
    # A slot's uid runs nothing but this run: that reaches what left the process group (setsid).
    # Only for an unprivileged uid of its own: as root or as the agent's user kill(-1) would hit
    # everything else. kill(-1) spares the caller, the group kill ends it last.
    if sweep_uid is not None and os.getuid() == sweep_uid and os.geteuid() == sweep_uid and sweep_uid != 0:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
    os.killpg(0, signal.SIGKILL)


def _start_lifeline():
    """The run must not outlive the agent whatever its isolation (bwrap's --die-with-parent only covers the sandbox)."""
    global _lifeline_started
    # Taken out of the environment: a task's own ansible-playbook must not take another fd for it.
    fd = os.environ.pop('RUNNER_LIFELINE_FD', None)
    uid = os.environ.pop('RUNNER_LIFELINE_UID', None)
    if _lifeline_started or not fd:
        return
    _lifeline_started = True
    try:
        t = threading.Thread(target=_lifeline_watch, args=(int(fd), int(uid) if uid else None), name='runner-lifeline')
        t.daemon = True
        t.start()
    except Exception:
        pass


def _host_name(host):
    if host is None:
        return None
    try:
        return host.get_name()
    except Exception:
        return u'%s' % (host,)


def _task_name(task):
    if task is None:
        return None
    try:
        return task.get_name().strip()
    except Exception:
        return u'%s' % (task,)


class CallbackModule(DefaultCallbackModule):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'runner_events'

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        _start_lifeline()
        self._runner_fd = None
        self._runner_file = None
        self._runner_play = None
        self._runner_play_uuid = None
        self._runner_stop_requested = False
        fd = os.environ.get('RUNNER_EVENTS_FD')
        path = os.environ.get('RUNNER_EVENTS_FILE')
        if fd:
            self._runner_fd = int(fd)
        elif path:
            self._runner_file = open(path, 'ab', buffering=0)
        self._runner_active = self._runner_fd is not None or self._runner_file is not None
        if self._runner_active:
            try:
                signal.signal(signal.SIGINT, self._runner_on_sigint)
            except ValueError:  # not the main thread: keep Ansible's own handling
                pass

    # -- graceful stop -------------------------------------------------------------------------

    def _runner_on_sigint(self, signum, frame):
        if self._runner_stop_requested:
            raise KeyboardInterrupt()
        self._runner_stop_requested = True

    def _runner_check_stop(self):
        # Called where one task has finished on every host and the next has not been queued.
        if self._runner_stop_requested:
            raise KeyboardInterrupt()

    # -- output --------------------------------------------------------------------------------

    def _runner_write(self, record):
        try:
            line = json.dumps(record, cls=_Encoder, sort_keys=False)
        except Exception:
            record['data'] = {'unserializable': True}
            line = json.dumps(record, cls=_Encoder)
        data = (line + u'\n').encode('utf-8', 'surrogateescape')
        try:
            if self._runner_fd is not None:
                view = memoryview(data)
                while view:
                    n = os.write(self._runner_fd, view)
                    view = view[n:]
            elif self._runner_file is not None:
                self._runner_file.write(data)
        except OSError:
            # The agent went away; Ansible must still finish (or be stopped) on its own.
            self._runner_fd = None
            self._runner_file = None

    def _runner_emit(self, event, render, host=None, task=None, data=None):
        """Renders the default callback's text for this event, then writes the JSON record."""
        if not self._runner_active:
            render()
            return
        real = self._display
        capture = _Capture(real)
        self._display = capture
        try:
            render()
        except Exception:
            capture.parts.append(u'[runner_events] could not render %s: %s\n' % (event, traceback.format_exc().strip().splitlines()[-1]))
        finally:
            self._display = real
        stdout = capture.text()
        self._runner_write({
            'event': event,
            'ts': int(time.time() * 1000),
            'play': self._runner_play,
            'task': task,
            'host': host,
            'stdout': stdout,
            'data': data if data is not None else {},
        })

    @staticmethod
    def _runner_clean(result):
        try:
            return strip_internal_keys(module_response_deepcopy(result))
        except Exception:
            return dict(result)

    def _runner_result_data(self, result, **extra):
        task = result._task
        raw = result._result
        data = {
            'result': self._runner_clean(raw),
            'task_uuid': getattr(task, '_uuid', None),
            'task_action': getattr(task, 'action', None),
            'play_uuid': self._runner_play_uuid,
            'changed': bool(raw.get('changed', False)),
        }
        delegate = getattr(task, 'delegate_to', None)
        if delegate:
            data['delegated_to'] = delegate
        if '_ansible_item_label' in raw or 'item' in raw:
            data['item'] = self._get_item_label(raw)
        data.update(extra)
        return data

    def _runner_result_event(self, event, result, render, **extra):
        data = self._runner_result_data(result, **extra)  # before the default callback trims the result
        self._runner_emit(event, render, host=_host_name(result._host), task=_task_name(result._task), data=data)

    # -- playbook and play ---------------------------------------------------------------------

    def v2_playbook_on_start(self, playbook):
        name = getattr(playbook, '_file_name', None)
        self._runner_emit('playbook_on_start', lambda: super(CallbackModule, self).v2_playbook_on_start(playbook),
                          data={'playbook': os.path.basename(name) if name else None})

    def v2_playbook_on_play_start(self, play):
        self._runner_check_stop()
        self._runner_play = play.get_name().strip()
        self._runner_play_uuid = getattr(play, '_uuid', None)
        self._runner_emit('playbook_on_play_start', lambda: super(CallbackModule, self).v2_playbook_on_play_start(play),
                          data={'play_uuid': self._runner_play_uuid, 'pattern': getattr(play, 'hosts', None)})

    def v2_playbook_on_no_hosts_matched(self):
        self._runner_emit('playbook_on_no_hosts_matched', lambda: super(CallbackModule, self).v2_playbook_on_no_hosts_matched())

    def v2_playbook_on_no_hosts_remaining(self):
        self._runner_emit('playbook_on_no_hosts_remaining', lambda: super(CallbackModule, self).v2_playbook_on_no_hosts_remaining())

    def v2_playbook_on_vars_prompt(self, varname, private=True, prompt=None, encrypt=None, confirm=False,
                                   salt_size=None, salt=None, default=None, unsafe=None):
        self._runner_emit('playbook_on_vars_prompt', lambda: None, data={'varname': varname})

    def v2_playbook_on_include(self, included_file):
        self._runner_emit('playbook_on_include', lambda: super(CallbackModule, self).v2_playbook_on_include(included_file),
                          data={'filename': included_file._filename,
                                'hosts': [h.name for h in included_file._hosts]})

    def v2_playbook_on_notify(self, handler, host):
        self._runner_emit('playbook_on_notify', lambda: super(CallbackModule, self).v2_playbook_on_notify(handler, host),
                          host=_host_name(host), data={'handler': _task_name(handler)})

    def v2_playbook_on_stats(self, stats):
        hosts = {}
        for h in sorted(stats.processed.keys()):
            t = stats.summarize(h)
            hosts[h] = {
                'ok': t['ok'], 'changed': t['changed'], 'failed': t['failures'], 'skipped': t['skipped'],
                'unreachable': t['unreachable'], 'rescued': t['rescued'], 'ignored': t['ignored'],
            }
        data = {'hosts': hosts}
        if stats.custom:
            data['custom'] = stats.custom
        self._runner_emit('playbook_on_stats', lambda: super(CallbackModule, self).v2_playbook_on_stats(stats), data=data)

    # -- tasks ---------------------------------------------------------------------------------

    def _runner_task_data(self, task, **extra):
        data = {'task_uuid': getattr(task, '_uuid', None), 'task_action': getattr(task, 'action', None),
                'play_uuid': self._runner_play_uuid}
        try:
            data['task_path'] = task.get_path()
        except Exception:
            pass
        data.update(extra)
        return data

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._runner_check_stop()
        self._runner_emit('playbook_on_task_start',
                          lambda: super(CallbackModule, self).v2_playbook_on_task_start(task, is_conditional),
                          task=_task_name(task), data=self._runner_task_data(task, is_conditional=is_conditional))

    def v2_playbook_on_handler_task_start(self, task):
        self._runner_check_stop()
        self._runner_emit('playbook_on_handler_task_start',
                          lambda: super(CallbackModule, self).v2_playbook_on_handler_task_start(task),
                          task=_task_name(task), data=self._runner_task_data(task))

    def v2_playbook_on_cleanup_task_start(self, task):
        self._runner_check_stop()
        self._runner_emit('playbook_on_cleanup_task_start',
                          lambda: super(CallbackModule, self).v2_playbook_on_cleanup_task_start(task),
                          task=_task_name(task), data=self._runner_task_data(task))

    def v2_runner_on_start(self, host, task):
        self._runner_emit('runner_on_start', lambda: super(CallbackModule, self).v2_runner_on_start(host, task),
                          host=_host_name(host), task=_task_name(task), data=self._runner_task_data(task))

    # -- results -------------------------------------------------------------------------------

    def v2_runner_on_ok(self, result):
        self._runner_result_event('runner_on_ok', result, lambda: super(CallbackModule, self).v2_runner_on_ok(result))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._runner_result_event('runner_on_failed', result,
                                  lambda: super(CallbackModule, self).v2_runner_on_failed(result, ignore_errors),
                                  ignore_errors=bool(ignore_errors))

    def v2_runner_on_skipped(self, result):
        self._runner_result_event('runner_on_skipped', result, lambda: super(CallbackModule, self).v2_runner_on_skipped(result))

    def v2_runner_on_unreachable(self, result):
        self._runner_result_event('runner_on_unreachable', result,
                                  lambda: super(CallbackModule, self).v2_runner_on_unreachable(result))

    def v2_runner_item_on_ok(self, result):
        self._runner_result_event('runner_item_on_ok', result, lambda: super(CallbackModule, self).v2_runner_item_on_ok(result))

    def v2_runner_item_on_failed(self, result):
        self._runner_result_event('runner_item_on_failed', result,
                                  lambda: super(CallbackModule, self).v2_runner_item_on_failed(result))

    def v2_runner_item_on_skipped(self, result):
        self._runner_result_event('runner_item_on_skipped', result,
                                  lambda: super(CallbackModule, self).v2_runner_item_on_skipped(result))

    def v2_runner_retry(self, result):
        self._runner_result_event('runner_retry', result, lambda: super(CallbackModule, self).v2_runner_retry(result),
                                  retries=result._result.get('retries'), attempts=result._result.get('attempts'))

    def v2_runner_on_async_poll(self, result):
        self._runner_result_event('runner_on_async_poll', result,
                                  lambda: super(CallbackModule, self).v2_runner_on_async_poll(result))

    def v2_runner_on_async_ok(self, result):
        self._runner_result_event('runner_on_async_ok', result,
                                  lambda: super(CallbackModule, self).v2_runner_on_async_ok(result))

    def v2_runner_on_async_failed(self, result):
        self._runner_result_event('runner_on_async_failed', result,
                                  lambda: super(CallbackModule, self).v2_runner_on_async_failed(result))

    def v2_on_file_diff(self, result):
        self._runner_result_event('on_file_diff', result, lambda: super(CallbackModule, self).v2_on_file_diff(result))
