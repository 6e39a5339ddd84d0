"""Every subcommand's --help describes each of its options and shows its default; evaluate has a default dataset."""

import argparse

import pytest

from minicnn.commands import cli


def subcommands():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_option_has_a_description_and_its_default(name, capsys):
    sub = subcommands()[name]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction) or not (action.option_strings or name == "explain"):
            continue
        assert action.help, f"minicnn {name}: {action.option_strings or action.dest} has no description"
    assert cli.main([name, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for action in sub._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            assert f"default: {action.default}" in text or "default" in action.help, (name, action.dest)


def test_explain_help_shows_the_defaults(capsys):
    assert cli.main(["explain", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: vgg_cifar10)" in text and "(default: 5)" in text and "(default: gradcam)" in text


def test_evaluate_without_data_reads_the_shipped_test_images(capsys):
    assert cli.main(["evaluate", "--model", "vgg_cifar10", "--limit", "20"]) == 0
    out = capsys.readouterr().out
    assert "data: the 300 shipped CIFAR-10 test images (minicnn/data/cifar10)" in out
    assert "(20 images)" in out
