"""Every numeric flag of every command, given 0, a negative number and a huge number: exit 1 with one line
that names the flag and its range, or (where the value is allowed) a correct result; never a traceback.
The flags are read from the commands' signatures, so a new flag is tested without editing this file."""

import typing, uuid

import pytest

from cli_run import run
import pmanet.demo, pmanet.study
from pmanet.cli import COMMANDS, FLAG_BOUNDS, numeric_flags, resolve_command
from pmanet.synthetic import SyntheticConfig, make_synthetic

BAD_OR_EDGE = (0, -1, 10**12)
TINY_NET = ['--depth', '18', '--weights', 'none', '--size', '64', '--ids-per-batch', '2',
            '--images-per-id', '2']


@pytest.fixture(scope='module')
def w(tmp_path_factory):
    "A tiny synthetic set, its masks, a PANet and a BoT checkpoint, a part store and a gallery index."
    d = tmp_path_factory.mktemp('numbers')
    root = make_synthetic(d/'veri', SyntheticConfig(train_ids=4, test_ids=2, images_per_id=4, size=64,
                                                     cameras=3, cameras_per_id=(2, 3)))
    steps = [['pseudo-masks', root, d/'masks', '--iters', '1', '--quiet'],
             ['train-panet', root, d/'masks', d/'panet', '--epochs', '1', '--max-iters', '1', *TINY_NET],
             ['parts', root, d/'panet'/'last.pt', d/'parts', '--batch-size', '8', '--workers', '0'],
             ['train', root, 'none', d/'bot', '--model', 'bot', '--epochs', '1', '--max-iters', '1',
              '--eval-every', '0', '--quiet', *TINY_NET],
             ['embed', root/'image_test', d/'index', '--checkpoint', d/'bot'/'last.pt']]
    for argv in steps: assert run(*argv)[0] == 0, argv
    return d, root


def baseline(command, d, root):
    "A cheap, valid invocation of `command`; NEW is replaced by a fresh output path."
    bot = d/'bot'/'last.pt'
    return {
        'synthetic': ['NEW', '--ids', '3', '--images', '2', '--cameras', '2', '--size', '32'],
        'pseudo-masks': [root, 'NEW', '--iters', '1', '--quiet'],
        'train-panet': [root, d/'masks', 'NEW', '--epochs', '1', '--max-iters', '1', *TINY_NET],
        'parts': [root, d/'panet'/'last.pt', 'NEW', '--batch-size', '8', '--workers', '0'],
        'train': [root, 'none', 'NEW', '--model', 'bot', '--epochs', '1', '--max-iters', '1',
                  '--eval-every', '0', '--quiet', *TINY_NET],
        'occlude': [root/'image_query', 'NEW'],
        'eval': [bot, root, '--workers', '0'],
        'demo': ['--out', 'NEW', '--quiet'],
        'study': ['--out', 'NEW', '--seeds', '1', '--quiet'],
        'embed': [root/'image_test', 'NEW', '--checkpoint', bot],
        'search': [root/'image_query', d/'index', '--checkpoint', bot, '--out', 'NEW'],
        'export': [bot, 'NEW.onnx'],
    }[command]


def with_flag(argv, flag, value):
    "`argv` with `--flag value` set (replacing the baseline's own value of it)."
    argv, opt = list(argv), '--' + flag.replace('_', '-')
    if opt in argv:
        i = argv.index(opt)
        del argv[i:i + 2]
    return [*argv, opt, value]


def bounds_of(command, flag): return FLAG_BOUNDS.get(f'{command}.{flag}', FLAG_BOUNDS.get(flag))


CASES = [(c, n, v) for c in COMMANDS for n in numeric_flags(resolve_command(c)) for v in BAD_OR_EDGE]


def test_every_command_has_numeric_flags_under_test():
    assert {c for c, _, _ in CASES} == set(COMMANDS)
    assert len(CASES) >= 3 * 40


@pytest.mark.parametrize('command,flag,value', CASES, ids=[f'{c}-{n}={v}' for c, n, v in CASES])
def test_numeric_flag(w, tmp_path, monkeypatch, command, flag, value):
    d, root = w
    bounds = bounds_of(command, flag)
    new = str(tmp_path/f'out_{uuid.uuid4().hex[:6]}')
    argv = [command, *(str(a).replace('NEW', new) for a in with_flag(baseline(command, d, root), flag,
                                                                      value))]
    if value not in bounds:
        rc, out, err = run(*argv)
        opt = '--' + flag.replace('_', '-')
        assert rc == 1 and err.count('\n') == 1, (argv, err)
        assert err.startswith(f"pmanet: {opt} must be {bounds}, got "), (argv, err)
        return
    # an allowed value: the command runs (the demo and study are stood in for: they take minutes)
    seen = []
    monkeypatch.setattr(pmanet.demo, 'run_demo', lambda out, cfg, *a: seen.append(cfg) or {})
    monkeypatch.setattr(pmanet.study, 'run_study', lambda out, cfg, seeds, *a: seen.append((cfg, seeds)))
    rc, out, err = run(*argv)
    assert rc == 0 and 'Traceback' not in err, (argv, err)
    if command in ('demo', 'study'): assert len(seen) == 1


def test_huge_values_refused_except_all_of_it():
    "A huge value is refused, except where 'more than there is' means 'all of it' (or 'no limit')."
    allowed = {f'{c}.{n}' for c, n, v in CASES if v == 10**12 and v in bounds_of(c, n)}
    assert allowed == {'train-panet.max_iters', 'train.max_iters', 'train.eval_every', 'embed.block',
                       'search.k', 'search.show'}


def config_classes():
    "Every config dataclass of the package: each module is imported, so a new one is found too."
    import importlib, pkgutil
    from pmanet.core import Config
    for m in pkgutil.iter_modules(pmanet.__path__): importlib.import_module(f'pmanet.{m.name}')
    todo, found = [Config], []
    while todo: found += (todo := [s for c in todo for s in c.__subclasses__()])
    return sorted(set(found), key=lambda c: c.__name__)


def numeric_fields(cls):
    "The fields of `cls` that hold a number or a tuple of numbers (by their defaults)."
    import dataclasses
    def numeric(v): return (isinstance(v, (int, float)) and not isinstance(v, bool)) or (
        isinstance(v, tuple) and bool(v) and all(numeric(x) for x in v))
    hints = typing.get_type_hints(cls)
    return [f for f in dataclasses.fields(cls) if numeric(f.default) or (
        f.default is None and any(t in (int, float, tuple) for t in typing.get_args(hints[f.name])))]


def test_every_numeric_config_field_declares_bounds():
    assert len(config_classes()) >= 8
    missing = [f'{c.__name__}.{f.name}' for c in config_classes() for f in numeric_fields(c)
               if 'bounds' not in f.metadata]
    assert missing == []


@pytest.mark.parametrize('cls', config_classes(), ids=lambda c: c.__name__)
def test_config_fields_refuse_bad_numbers(cls):
    "Each numeric field, set to a value outside its bounds, is refused by name; the defaults are accepted."
    from pmanet.core import ConfigError
    cls()
    hints = typing.get_type_hints(cls)
    for f in numeric_fields(cls):
        b = f.metadata['bounds']
        bad = -1 if b.choices is not None or (b.lo is not None and b.lo >= 0) else 10**12
        if bad in b: bad = 10**12
        if isinstance(f.default, tuple): value = (bad,) * len(f.default)
        else: value = (bad,) if tuple in typing.get_args(hints[f.name]) else bad
        with pytest.raises(ConfigError, match=rf'{cls.__name__}\W+{f.name}\b'):   # names the field
            cls(**{f.name: value})
