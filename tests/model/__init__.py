"""Tests of nas.model: genome, space DSL, builder, complexity."""
