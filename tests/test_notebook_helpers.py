import ast
import textwrap

from dopatut.course.notebook import source


def _long(a_tensor_name, another_long_argument_name, yet_another_argument, and_one_more_argument_here=1):
    """A docstring line long enough that the page would wrap it at column zero if it were printed as it is."""
    total = a_tensor_name + another_long_argument_name + yet_another_argument + and_one_more_argument_here  # sum
    values = {"first": a_tensor_name, "second": another_long_argument_name, "third": yet_another_argument}
    if total > 0 and another_long_argument_name > 0 and yet_another_argument > 0 and and_one_more_argument_here:
        raise ValueError(f"total is {total}, from {values}, "
                         f"which is more than zero")
    return total if a_tensor_name == another_long_argument_name == yet_another_argument == 0 else -total


def _tree(text):
    tree = ast.parse(textwrap.dedent(text))
    for node in ast.walk(tree):  # docstrings are rewrapped for the page: compare the code only
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node) is not None:
            node.body = node.body[1:]
    return ast.dump(tree)


def test_source_keeps_every_line_within_the_width_and_the_code_the_same():
    import inspect
    shown = source(_long, width=88)
    assert max(len(line) for line in shown.splitlines()) <= 88, shown
    assert _tree(shown) == _tree(inspect.getsource(_long))
    words = " ".join(shown.split())
    assert "# sum" in words and "at column zero if it were" in words  # comments and docstrings kept, moved


def test_source_leaves_short_code_as_it_is():
    def short(x):
        return x + 1  # one

    assert source(short) == "def short(x):\n    return x + 1  # one"


def test_source_of_a_real_method_parses():
    from dopatut.methods.gate import DopamineGate
    shown = source(DopamineGate.gate_values)
    assert shown.startswith("def gate_values") and max(map(len, shown.splitlines())) <= 88
    ast.parse(shown)


def _long_message(width_of_the_layer, name_of_the_place):
    raise ValueError(f"the gate has {width_of_the_layer} neurons at {name_of_the_place}, but the layer gives more")


def test_source_splits_a_long_string_into_adjacent_literals():
    import inspect
    shown = source(_long_message, width=60)
    assert max(len(line) for line in shown.splitlines()) <= 60, shown
    assert _tree(shown) == _tree(inspect.getsource(_long_message))  # Python joins them into the same string


def test_source_of_whole_modules_keeps_the_code():
    import inspect
    from dopatut.methods import gate, lora
    from dopatut.study import pipeline
    for module in (gate, lora, pipeline):
        for _, obj in inspect.getmembers(module, lambda x: inspect.isfunction(x) or inspect.isclass(x)):
            if obj.__module__ == module.__name__:
                assert _tree(source(obj)) == _tree(inspect.getsource(obj)), obj.__qualname__


def test_glue_stores_numpy_and_torch_scalars_as_python_numbers():
    import numpy as np
    import torch

    from dopatut.course.notebook import plain

    for scalar, number in [(np.float64(94.2), 94.2), (np.int64(3), 3), (torch.tensor(0.5), 0.5)]:
        assert type(plain(scalar)) is type(number) and plain(scalar) == number
    assert plain(torch.tensor([0.5])).shape == (1,) and plain("words") == "words" and plain(2.5) == 2.5
