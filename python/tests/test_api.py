"""The Python surface: numpy in and out, bad input, configs, files, training."""
import numpy as np
import pytest

import lookahead as la


def small_planner(ctx, **kw):
    cfg = dict(population=24, horizon=6, iterations=2, particles=3, seed=5)
    cfg.update(kw)
    ens = la.Ensemble.random(3, 1, members=3, hidden=[16, 16], seed=1)
    return la.Planner(ctx, la.Task.builtin("pendulum"), ens, **cfg)


def test_float32_float64_and_strided_observations_give_the_same_plan(ctx):
    obs64 = np.array([0.6, -0.8, 0.3])
    wide = np.zeros(6)
    wide[::2] = obs64  # a non-contiguous view
    plans = [small_planner(ctx).plan(o) for o in (obs64, obs64.astype(np.float32), wide[::2], list(obs64))]
    for p in plans[1:]:
        np.testing.assert_array_equal(p.action, plans[0].action)
        np.testing.assert_array_equal(p.actions, plans[0].actions)
    p = plans[0]
    assert p.action.dtype == np.float32 and p.action.shape == (1,)
    assert p.actions.shape == (6, 1) and p.iterations == 2
    np.testing.assert_array_equal(p.action, p.actions[0])
    assert np.all(np.abs(p.actions) <= 2.0)


def test_bad_observations_are_refused_with_clear_errors(ctx):
    planner = small_planner(ctx)
    with pytest.raises(ValueError, match=r"obs: shape \(4,\); expected \(3,\)"):
        planner.plan(np.zeros(4))
    with pytest.raises(ValueError, match=r"expected \(n, 3\)"):
        planner.plan_batch(np.zeros(3))
    with pytest.raises(TypeError, match="dtype int64"):
        planner.plan(np.zeros(3, dtype=np.int64))
    with pytest.raises(la.InputError, match="non-finite"):
        planner.plan(np.array([np.nan, 0.0, 0.0]))
    with pytest.raises(la.InputError, match="exactly one"):
        planner.plan_with(np.zeros(3))
    # The planner is intact after refusing.
    assert planner.plan(np.zeros(3)).action.shape == (1,)


def test_batch_plans_and_budgets(ctx):
    obs = np.array([[0.6, -0.8, 0.3], [1.0, 0.0, 0.0]])
    plans = small_planner(ctx).plan_batch(obs)
    assert len(plans) == 2 and all(p.actions.shape == (6, 1) for p in plans)
    assert not np.array_equal(plans[0].actions, plans[1].actions)
    p = small_planner(ctx, iterations=3).plan_with(obs[0], iterations=1)
    assert p.iterations_done == 1 and p.status is not None


def test_unknown_and_impossible_settings_are_config_errors(ctx):
    with pytest.raises(la.ConfigError, match="bogus"):
        small_planner(ctx, bogus=1)
    with pytest.raises(la.ConfigError, match="population"):
        small_planner(ctx, population=0)
    with pytest.raises(la.ConfigError, match="mlp_kernel"):
        small_planner(ctx, mlp_kernel="fast")
    with pytest.raises(la.ConfigError, match="model_step"):
        small_planner(ctx, model_step="both")
    # A non-finite value is named by its key, every such key at once.
    with pytest.raises(la.ConfigError, match=r"^alpha, action_upper\[0\]: must be finite"):
        small_planner(ctx, alpha=float("nan"), action_upper=np.array([np.inf]))
    # One dispatch per model step needs the fused (or coop16) network kernel.
    with pytest.raises(la.ConfigError, match="model_step"):
        small_planner(ctx, mlp_kernel="tiled", model_step="fused")
    fused = small_planner(ctx, mlp_kernel="fused", model_step="fused")
    split = small_planner(ctx, mlp_kernel="fused", model_step="split")
    assert (fused.model_step, split.model_step) == ("fused", "split")
    np.testing.assert_array_equal(fused.plan(np.zeros(3)).actions, split.plan(np.zeros(3)).actions)
    ens = la.Ensemble.random(3, 1, members=3, hidden=[8])
    with pytest.raises(la.ConfigError, match="num_elites"):
        la.Trainer(ctx, ens, num_elites=5)
    # Without the key, a 3-member ensemble gets 3 elites (not the engine's 5, which it refuses).
    assert la.Trainer(ctx, ens).elites == [0, 1, 2]
    assert len(la.Trainer(ctx, la.Ensemble.random(3, 1, members=7, hidden=[8])).elites) == 5


def test_sizes_and_seeds_must_be_non_negative_integers_named_in_the_error(ctx):
    for call, name in [
        (lambda: la.Ensemble.random(3, 1, members=-1), "members"),
        (lambda: la.Ensemble.random(3, 1, hidden=(8, -4)), r"hidden\[1\]"),
        (lambda: la.Ensemble.random(3, 1, seed=-1), "seed"),
        (lambda: la.Ensemble.random(3, 1, members=2, hidden=[8]).select_members([0, -1]), r"members\[1\]"),
        (lambda: la.ReplayBuffer(-3, 1), "obs_dim"),
        (lambda: la.Task.custom("x", 3, -1, [-1.0], [1.0], ""), "act_dim"),
        (lambda: small_planner(ctx).plan_with(np.zeros(3), iterations=-2), "iterations"),
        (lambda: la.Ensemble.random(3, 1, members=2**64), "members"),
    ]:
        with pytest.raises(la.InputError, match=name):
            call()
    with pytest.raises(TypeError, match="members"):
        la.Ensemble.random(3, 1, members=2.5)
    with pytest.raises(TypeError, match="seed"):
        la.Ensemble.random(3, 1, seed=True)
    # An ensemble of another architecture is refused in words, not Rust's debug output.
    with pytest.raises(la.InputError, match=r"hidden \[16, 8\].*differs.*hidden \[16, 16\]"):
        small_planner(ctx).set_ensemble(la.Ensemble.random(3, 1, members=3, hidden=[16, 8]))
    # numpy integers are integers.
    assert la.Ensemble.random(np.int64(3), np.int32(1), members=np.uint8(2), hidden=[np.int64(8)]).spec["members"] == 2


def test_absurd_sizes_are_exceptions_naming_the_setting_not_aborts(ctx):
    """20 layers of 14 000 aborted the interpreter (an allocation failure) and a buffer of
    10**12-wide observations was accepted: every constructor refuses sizes past the limits."""
    for call, cls, key in [
        (lambda: la.Ensemble.random(3, 1, members=5, hidden=[14000] * 20), la.ConfigError, "model.members"),
        (lambda: la.Ensemble.random(3, 1, hidden=[1] * 100000), la.ConfigError, "more than 64"),
        (lambda: la.ReplayBuffer(10**12, 1), la.ConfigError, "obs_dim"),
        (lambda: la.ReplayBuffer(3, la.MAX_ACT + 1), la.ConfigError, "act_dim"),
        (lambda: la.Task.custom("x", 10**12, 1, [-1.0], [1.0], ""), la.ConfigError, "obs_dim"),
        (lambda: la.Trainer(ctx, la.Ensemble.random(3, 1, members=2, hidden=[8]), batch_size=2**40), la.LimitError,
         "batch_size"),
        (lambda: small_planner(ctx, population=10**15), la.LimitError, "population"),
        (lambda: small_planner(ctx, horizon=10**15), la.ConfigError, "horizon"),
    ]:
        with pytest.raises(cls, match=key):
            call()


def test_custom_task_wgsl_errors_name_the_shader(ctx):
    good = la.Task.builtin("pendulum").wgsl
    broken = la.Task.custom("broken", 3, 1, [-2.0], [2.0], good.replace("fn env_reward", "fn env_rewrd"))
    with pytest.raises(la.GpuError, match="shader"):
        la.Planner(ctx, broken, la.Ensemble.random(3, 1, members=2, hidden=[8]), population=8, horizon=3)
    with pytest.raises(la.ConfigError, match="action_bounds"):
        la.Task.custom("bounds", 3, 1, [2.0], [-2.0], good)
    # An error on the task's line 7 is reported at line 7 of the task's own text.
    lines = good.splitlines()
    lines.insert(6, "    let broken = ;")
    typo = la.Task.custom("typo", 3, 1, [-2.0], [2.0], "\n".join(lines), has_dynamics=True)
    with pytest.raises(la.GpuError, match="typo:7:5"):
        la.Planner(ctx, typo, None, population=8, horizon=3)


def test_ensemble_files_round_trip_and_corrupt_files_are_refused(ctx, tmp_path):
    ens = la.Ensemble.random(4, 2, members=3, hidden=[8, 5], seed=3)
    path = tmp_path / "ens.safetensors"
    ens.save(path)
    back = la.Ensemble.load(path)
    a, b = ens.arrays(), back.arrays()
    assert [w.shape for w, _ in a["layers"]] == [(3, 6, 8), (3, 8, 5), (3, 5, 8)]
    for (w1, b1), (w2, b2) in zip(a["layers"], b["layers"]):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.safetensors").write_bytes(bytes(data))
    with pytest.raises(la.LookaheadError):
        la.Ensemble.load(tmp_path / "bad.safetensors")
    with pytest.raises(la.LookaheadError, match="missing.safetensors"):
        la.Ensemble.load(tmp_path / "missing.safetensors")


def test_training_fits_a_linear_system_and_resumes_from_a_checkpoint(ctx, tmp_path):
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(600, 3))
    act = rng.uniform(-1, 1, size=(600, 1))
    nxt = obs + 0.1 * obs[:, [1, 2, 0]] + 0.2 * act
    ens = la.Ensemble.random(3, 1, members=3, hidden=[32, 32], seed=2)
    tr = la.Trainer(ctx, ens, epochs=25, batch_size=32, num_elites=2, lr=3e-3, patience=0, seed=1)
    rep = tr.train(obs, act, nxt)
    assert rep["epochs"] == 25 and len(rep["elites"]) == 2
    # The held-out error is far below predicting no change (variance of the change ≈ 0.04).
    change = nxt - obs
    assert min(rep["best_mse"]) < 0.1 * float(np.mean(change**2)), rep["best_mse"]
    with pytest.raises(ValueError, match="next_obs"):
        tr.train(obs, act, nxt[:-1])
    with pytest.raises(la.InputError):
        bad = nxt.copy()
        bad[3, 1] = np.inf
        tr.train(obs, act, bad)
    tr.save_checkpoint(tmp_path / "ckpt.safetensors")
    back = la.Trainer.load_checkpoint(ctx, tmp_path / "ckpt.safetensors")
    r1, r2 = tr.train(obs, act, nxt), back.train(obs, act, nxt)
    assert r1["train_loss"] == r2["train_loss"], "a resumed trainer continues exactly"


def test_replay_buffers_train_save_load_and_refuse_bad_batches_whole(ctx, tmp_path):
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(200, 3))
    act = rng.uniform(-1, 1, size=(200, 1))
    nxt = obs + 0.2 * act
    buf = la.ReplayBuffer(3, 1)
    buf.add(obs[0], act[0], nxt[0], 1.5, False)  # one transition
    buf.add(obs[1:], act[1:], nxt[1:])
    assert len(buf) == 200
    bad = nxt[:5].copy()
    bad[4, 0] = np.nan
    with pytest.raises(la.InputError, match="finite"):
        buf.add(obs[:5], act[:5], bad)
    assert len(buf) == 200, "a refused batch stores nothing"
    with pytest.raises(TypeError, match="terminated"):
        buf.add(obs[:2], act[:2], nxt[:2], terminated=np.array(["no", "yes"]))
    buf.save(tmp_path / "replay.safetensors")
    back = la.ReplayBuffer.load(tmp_path / "replay.safetensors", 3, 1)
    assert len(back) == 200
    ens = la.Ensemble.random(3, 1, members=2, hidden=[16], seed=4)
    a = la.Trainer(ctx, ens, epochs=3, batch_size=32, num_elites=1, seed=2)
    b = la.Trainer(ctx, ens, epochs=3, batch_size=32, num_elites=1, seed=2)
    # The same transitions through a buffer or as arrays train identically.
    ra = a.train(back)
    rb = b.train(obs, act, nxt, reward=np.r_[1.5, np.zeros(199)])
    assert ra["train_loss"] == rb["train_loss"]
    with pytest.raises(la.InputError, match="obs 4"):
        la.Trainer(ctx, la.Ensemble.random(4, 1, members=2, hidden=[8]), num_elites=1).train(back)


def test_threads_sharing_a_planner_take_turns_and_huge_budgets_are_errors(ctx):
    import threading

    planner = small_planner(ctx)
    done = []

    def work():
        for _ in range(4):
            planner.plan([1.0, 0.0, 0.0])  # plain lists of numbers are arrays too
        done.append(1)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(done) == 3, "threads sharing a planner deadlocked"
    with pytest.raises(la.InputError, match="longer than a time budget can be"):
        planner.plan_with(np.zeros(3), seconds=1e20)
    # A budget too long for the clock is no deadline (it used to panic and poison the planner).
    assert planner.plan_with(np.zeros(3), seconds=1e19).iterations_done == 2
    assert planner.plan(np.zeros(3, dtype=">f8")).action.shape == (1,)
    with pytest.raises(ValueError, match="plain name"):
        small_planner(ctx, **{"horizon=3\nfoo": 5})
    with pytest.raises(TypeError, match="not sections"):
        la.Planner(ctx, la.Task.builtin("pendulum"), None, {"planner": {"horizon": 5}})


def test_strings_nested_bounds_and_none_are_refused_and_status_is_a_word(ctx):
    planner = small_planner(ctx)
    for bad in (["1", "0", "0"], [True, False, True], [None, 1, 2]):
        with pytest.raises(TypeError, match="obs"):
            planner.plan(bad)
    with pytest.raises(ValueError, match="action_lower"):
        la.Task.custom("nested", 3, 2, [[0.0, 0.0]], [[1.0, 1.0]], la.Task.builtin("pendulum").wgsl)
    with pytest.raises(TypeError, match="ensemble"):
        planner.set_ensemble(None)
    status = planner.plan_with(np.zeros(3), iterations=1).status
    assert status in ("complete", "budget", "converged"), status
    # Bounds keep their double precision (0.3 as float32 is above 0.3).
    task = la.Task.custom("bounds", 3, 1, [0.3], [0.7], la.Task.builtin("pendulum").wgsl)
    assert task.action_lower[0] == 0.3


def test_ctrl_c_stops_training_within_seconds_and_the_trainer_stays_usable(ctx, tmp_path, sigint):
    """SIGINT while Trainer.train works with the GIL released: KeyboardInterrupt within seconds
    (not after the 3000 epochs), the best weights kept; the trainer trains again and its
    checkpoint loads and trains."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(600, 3))
    act = rng.uniform(-1, 1, size=(600, 1))
    nxt = obs + 0.1 * obs[:, [1, 2, 0]] + 0.2 * act
    ens = la.Ensemble.random(3, 1, members=3, hidden=[32, 32], seed=2)
    tr = la.Trainer(ctx, ens, epochs=3000, batch_size=32, num_elites=2, patience=0, seed=1)
    for _ in range(2):
        sigint.send(0.5)
        with pytest.raises(KeyboardInterrupt):
            tr.train(obs, act, nxt)
        took = sigint.since()
        print(f"Trainer.train: KeyboardInterrupt {took:.3f} s after Ctrl-C")
        assert took < sigint.BOUND, f"KeyboardInterrupt {took:.1f} s after Ctrl-C"
    assert len(tr.elites) == 2 and tr.ensemble().spec["members"] == 3
    tr.save_checkpoint(tmp_path / "ckpt.safetensors")
    back = la.Trainer.load_checkpoint(ctx, tmp_path / "ckpt.safetensors", config=dict(epochs=2, num_elites=2))
    assert back.train(obs, act, nxt)["epochs"] == 2


def test_every_native_name_has_a_type_stub():
    """_lookahead.pyi declares exactly the native module's public functions, classes and
    constants. Catches a binding added (or removed) without its stub."""
    import pathlib
    import re

    from lookahead import _lookahead as lk

    text = pathlib.Path(lk.__file__).with_name("_lookahead.pyi").read_text()
    declared = {a or b for a, b in re.findall(r"^(?:def|class) (\w+)|^(\w+): ", text, re.M)}
    aliases = {"F32", "F64", "Bools"}
    native = {n for n in dir(lk) if not n.startswith("_")}
    assert native == declared - aliases, (sorted(native - declared), sorted(declared - aliases - native))
