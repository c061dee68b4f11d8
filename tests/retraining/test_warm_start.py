"""The warm-start decision: the production model's weights start a retrain only when they mean the same."""

from __future__ import annotations

from tasks.retraining.warm_start import ModelInputs, fits_sentence, inputs_misfit, shapes_misfit

FEATURES = ("bill_length_mm", "body_mass_g", "island=Biscoe", "island=Dream", "island=Torgersen")
CLASSES = ("Adelie", "Chinstrap", "Gentoo")
PRODUCTION = ModelInputs("classification", FEATURES, CLASSES)
SHAPES = [(5, 32), (32,), (32, 16), (16,), (16, 3), (3,)]


def test_the_same_inputs_and_classes_fit():
    assert inputs_misfit(PRODUCTION, ModelInputs("classification", FEATURES, CLASSES)) is None


def test_a_new_category_is_a_new_model_input_and_starts_from_scratch():
    candidate = ModelInputs("classification", (*FEATURES, "island=Biscoe Point"), CLASSES)
    assert inputs_misfit(PRODUCTION, candidate) == "the model inputs changed: 1 new ('island=Biscoe Point')"


def test_a_column_gone_and_one_added_are_both_named():
    candidate = ModelInputs("classification", ("flipper_length_mm", *FEATURES[1:]), CLASSES)
    assert inputs_misfit(PRODUCTION, candidate) == (
        "the model inputs changed: 1 new ('flipper_length_mm'), 1 gone ('bill_length_mm')"
    )


def test_inputs_in_another_order_do_not_fit():
    candidate = ModelInputs("classification", tuple(reversed(FEATURES)), CLASSES)
    assert inputs_misfit(PRODUCTION, candidate) == "the model inputs are the same but in another order"


def test_other_classes_do_not_fit():
    candidate = ModelInputs("classification", FEATURES, ("Adelie", "Gentoo"))
    assert inputs_misfit(PRODUCTION, candidate) == "the classes changed ('Adelie', 'Chinstrap', 'Gentoo' → 'Adelie', 'Gentoo')"


def test_another_task_does_not_fit():
    assert inputs_misfit(PRODUCTION, ModelInputs("regression", FEATURES, ())) == "the task changed (classification → regression)"


def test_many_changes_are_counted_not_all_listed():
    candidate = ModelInputs("classification", tuple(f"x{i}" for i in range(9)), CLASSES)
    reason = inputs_misfit(PRODUCTION, candidate)
    assert reason is not None
    assert reason.startswith("the model inputs changed: 9 new ('x0', 'x1', 'x2' and 6 more), 5 gone (")


def test_the_same_weight_shapes_fit():
    assert shapes_misfit(SHAPES, list(SHAPES)) is None


def test_another_network_is_named_by_its_layer_widths():
    narrower = [(5, 8), (8,), (8, 3), (3,)]
    assert shapes_misfit(SHAPES, narrower) == "the network changed (layer widths 5-32-16-3 → 5-8-3)"


def test_the_reason_a_warm_start_fits():
    assert fits_sentence("4", PRODUCTION) == "from v4 (@production): same 5 model inputs and 3 classes, same network"
    assert (
        fits_sentence("2", ModelInputs("regression", FEATURES, ())) == "from v2 (@production): same 5 model inputs, same network"
    )
