import matplotlib

matplotlib.use("Agg")

from dopatut.showing.answer import answer_table, foundation_sentence, headline, thresholds  # noqa: E402
from dopatut.showing.compare_plots import plot_forest  # noqa: E402
from dopatut.course.figcheck import figure_problems  # noqa: E402
from dopatut.analysis.stats import PairedDifference  # noqa: E402


def d(mean, half):
    return PairedDifference((mean,) * 10, mean, 0.01, mean - half, mean + half, 0.95)


ANSWER = {"mixture": {"frozen": d(0.010, 0.001), "gain_only": d(0.0002, 0.0004), "lora": d(-0.003, 0.001),
                      "full": d(-0.002, 0.001)},
          "upright": {"frozen": d(0.40, 0.01), "gain_only": d(0.02, 0.005), "lora": d(-0.05, 0.01),
                      "full": d(-0.10, 0.01)}}


def test_one_sentence_per_foundation_with_readable_names_and_verdicts_from_the_intervals():
    text = headline(ANSWER)
    assert text.count(". ") == 1 and text.endswith("."), text  # two sentences
    assert foundation_sentence("mixture", ANSWER["mixture"]) == (
        "On the mixture foundation, Dopamine beats the frozen foundation by 1.00 points, ties with gain-only (its "
        "interval −0.02 to +0.06 points) and loses to full fine-tuning by 0.20 and LoRA (r = 4) by 0.30 points.")
    assert "_" not in text and "lora" not in text


def test_thresholds_sentence_says_tie_or_gain_by_the_interval():
    assert thresholds(ANSWER) == ("Over gain-only, the thresholds add nothing we can detect on the mixture foundation "
                                  "(at most +0.06 points, the top of the interval) and a gain of 2.00 points on the "
                                  "upright foundation (95% interval +1.50 to +2.50).")
    both = {k: {"gain_only": d(0.0, 0.0004)} for k in ANSWER}
    assert "on either foundation" in thresholds(both) and "(at most +0.04 points" in thresholds(both)


def test_table_has_one_row_per_rival_and_the_intervals():
    table = answer_table(ANSWER, sizes={"frozen": 0, "gain_only": 512, "lora": 7272, "full": 269322}).html()
    assert table.count("<tr>") == 5 and "7,272" in table and "LoRA (r = 4)" in table
    assert "−0.30 (−0.40 to −0.20): loses to" in table


def test_forest_plot_has_a_row_per_rival_and_reads():
    fig = plot_forest(ANSWER)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["gain-only", "LoRA (r = 4)", "full fine-tuning"]
    assert [ax.get_title() for ax in fig.axes] == ["mixture foundation", "upright foundation"]
    assert figure_problems(fig) == []


def test_versus_one_rival_on_every_foundation():
    from dopatut.showing.answer import versus
    assert versus(ANSWER, "frozen") == ("Over 10 seeds, Dopamine beats the frozen foundation on the mixture foundation "
                                        "by 1.00 points and on the upright foundation by 40.00 points.")
    assert versus(ANSWER, "gain_only") == ("Over 10 seeds, Dopamine ties with gain-only on the mixture foundation (its "
                                           "interval −0.02 to +0.06 points) and beats gain-only on the upright foundation by 2.00 points.")


def test_in_short_gives_the_verdicts_alone():
    from dopatut.showing.answer import in_short
    assert in_short("mixture", ANSWER["mixture"]) == ("mixture foundation: Dopamine beats the frozen foundation; ties "
                                                      "with gain-only; loses to LoRA (r = 4) and full fine-tuning")


def test_verdicts_table_one_row_per_foundation_groups_from_the_intervals():
    from dopatut.showing.answer import verdicts_table
    two_ties = {**ANSWER["mixture"], "bitfit": d(-0.0005, 0.0010)}
    table = verdicts_table({"mixture": two_ties, "upright": ANSWER["upright"]})
    assert list(table.header) == ["foundation", "Dopamine beats", "ties with", "loses to"]
    assert list(table.rows[0]) == ["mixture", "frozen foundation by 1.00",
                                   "BitFit, gain-only (every interval between −0.15 and +0.06)",
                                   "LoRA (r = 4) by 0.30, full fine-tuning by 0.20"], table.rows[0]
    assert list(table.rows[1]) == ["upright", "frozen foundation by 40.00, gain-only by 2.00", "none",
                                   "full fine-tuning by 10.00, LoRA (r = 4) by 5.00"], table.rows[1]
    assert "10 seeds" in table.caption


def test_verdicts_table_gives_a_lone_tie_its_own_interval():
    from dopatut.showing.answer import verdicts_table
    table = verdicts_table({"mixture": ANSWER["mixture"]})
    assert table.rows[0][2] == "gain-only (interval −0.02 to +0.06)", table.rows[0]


def test_why_rivals_lead_separates_a_new_readout_from_new_features():
    from dopatut.showing.answer import why_rivals_lead
    upright = {**ANSWER["upright"], "head": d(-0.02, 0.005)}
    text = why_rivals_lead("upright", upright, "chapter 7")
    assert text == ("On the upright foundation, head-only, LoRA (r = 4) and full fine-tuning pull ahead of Dopamine. "
                    "Head-only changes no hidden neuron: it retrains only the output layer, a new readout of the "
                    "features the foundation already has, and that alone beats gates, which can only select and "
                    "rescale them; LoRA (r = 4) and full fine-tuning, which can also change the features "
                    "themselves, lead by more (chapter 7)."), text
    # head-only ahead by more than LoRA: no 'by more'
    assert why_rivals_lead("upright", {**upright, "head": d(-0.08, 0.005)}).endswith("pull ahead too.")
    # no readout among the winners: the features alone explain them
    assert why_rivals_lead("mixture", ANSWER["mixture"]) == (
        "On the mixture foundation, full fine-tuning and LoRA (r = 4) pull ahead of Dopamine. Full fine-tuning and "
        "LoRA (r = 4) can change the hidden features themselves, while gates can only select and rescale the "
        "neurons the foundation has.")
    assert why_rivals_lead("mixture", {"gain_only": d(-0.01, 0.001)}) == (
        "On the mixture foundation, gain-only pulls ahead of Dopamine.")
    assert why_rivals_lead("mixture", {"frozen": d(0.01, 0.001)}, "chapter 5") == (
        "On the mixture foundation, no rival pulls ahead of Dopamine (chapter 5).")
