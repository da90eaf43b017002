import pytest

from infra.settings import CREATABLE_PYTHON_RUNTIMES, DEEPLENS_TOPIC, Settings, SettingsError
from tests.conftest import cdk_json_context


def test_cdk_json_defaults_parse_to_documented_defaults():
    settings = Settings.from_mapping(cdk_json_context())
    assert settings == Settings()
    assert settings.region == "us-east-1"
    assert settings.glue_database == "awskrug"
    assert settings.lambda_function_name.startswith("deeplens")
    assert settings.inference_topics == (DEEPLENS_TOPIC, "maskcam/+/infer")
    assert settings.quicksight_principal_arn is None


def test_string_overrides_from_the_command_line_are_typed(placeholder_export):
    settings = Settings.from_mapping({
        "region": "ap-northeast-2", "account": "123456789012", "athena_bytes_scanned_cutoff_mb": "200",
        "greengrass_thing_group": "lobby-cams", "lambda_runtime": "python3.12", "model_export": str(placeholder_export),
        "quicksight_principal_arn": "arn:aws:quicksight:us-east-1:123456789012:user/default/ops",
    })
    assert settings.region == "ap-northeast-2"
    assert settings.account == "123456789012"
    assert settings.athena_bytes_scanned_cutoff_mb == 200
    assert settings.lambda_runtime == "python3.12"
    assert settings.greengrass_thing_group == "lobby-cams"


@pytest.mark.parametrize("key,value,expected", [
    ("region", "us-east", "AWS region"),
    ("account", "12345", "12-digit"),
    ("project", "Mask_Cam", "lowercase"),
    ("glue_database", "AWS-KRUG", "lowercase letters"),
    ("lambda_function_name", "mask-classifier", "starting with 'deeplens'"),
    ("lambda_runtime", "python3.7", "creation blocked since 2024-01-09"),
    ("lambda_runtime", "python2.7", "creation blocked"),
    ("lambda_runtime", "nodejs20.x", "allowed: python3.10"),
    ("inference_topic", "$aws/things/+/infer", "not starting with '$'"),
    ("inference_topic", "maskcam/#", "no '#'"),
    ("inference_topic", "maskcam/cam+/infer", "whole level"),
    ("quicksight_principal_arn", "ops@example.com", "QuickSight user or group ARN"),
    ("athena_bytes_scanned_cutoff_mb", "lots", "whole number"),
    ("athena_bytes_scanned_cutoff_mb", 5, "at least 10"),
])
def test_bad_values_name_the_key_and_what_is_allowed(key, value, expected):
    with pytest.raises(SettingsError) as err:
        Settings.from_mapping({key: value})
    assert f"'{key}'" in str(err.value)
    assert expected in str(err.value)
    assert err.value.key == key


def test_empty_values_fall_back_to_defaults():
    assert Settings.from_mapping({"account": "", "greengrass_thing_group": None}) == Settings()


def test_default_runtime_is_creatable():
    assert Settings().lambda_runtime in CREATABLE_PYTHON_RUNTIMES
