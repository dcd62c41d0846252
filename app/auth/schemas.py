from marshmallow import Schema, fields

from app.auth.models import Role


class UserSchema(Schema):
    id = fields.Integer()
    email = fields.Email()
    name = fields.String()
    role = fields.Enum(Role, by_value=True)
    environment_id = fields.Integer(allow_none=True)
    language = fields.String(allow_none=True)
